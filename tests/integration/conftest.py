"""Fixtures for the adapter tests: moto-backed AWS clients, a local HTTP receiver, a session.

Every fixture is function scoped, so each test starts from an empty bucket, an empty
Parameter Store and a receiver that has seen nothing.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
import requests
from moto import mock_aws

from tests.integration.builders import BUCKET
from tests.integration.state_steps import make_state_table
from tests.tools.receiver import LocalReceiver

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_ssm import SSMClient


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can ever reach a real account."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SSM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def aws(fake_credentials: None) -> Iterator[None]:
    """moto's AWS, empty for each test."""
    with mock_aws():
        yield


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def s3_client(aws: None) -> S3Client:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def ssm_client(aws: None) -> SSMClient:
    return boto3.client("ssm")


@pytest.fixture
def receiver() -> Iterator[LocalReceiver]:
    with LocalReceiver() as started:
        yield started


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A session that ignores proxy variables: every request here goes to 127.0.0.1."""
    with requests.Session() as fresh:
        fresh.trust_env = False
        yield fresh


@pytest.fixture
def dynamodb(aws: None, monkeypatch: pytest.MonkeyPatch) -> DynamoDBClient:
    """moto's DynamoDB, whatever endpoint the shell running the tests names."""
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    return boto3.client("dynamodb")


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> str:
    """A state table as `sfb provision` makes it, new for the test."""
    return make_state_table(dynamodb)
