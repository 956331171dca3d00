"""Fixtures: moto's server once per session, and per test a bucket, a receiver and env."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from adapters.json_logging import JsonFormatter, configure_logging
from tests.e2e.dynalite import DynaliteUnavailable, running_dynalite
from tests.e2e.support import LogLines, Stack
from tests.tools.receiver import LocalReceiver

AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholder
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 on 127.0.0.1, shared by the session; each test keeps to its own bucket."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, tmp_path: Path) -> str:
    """Point boto3 at moto the way a user with an emulator would: through the environment."""
    for name in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    nowhere = str(tmp_path / "no-aws-config")
    monkeypatch.setenv("AWS_CONFIG_FILE", nowhere)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", nowhere)
    return moto_endpoint


@pytest.fixture
def receiver() -> Iterator[LocalReceiver]:
    with LocalReceiver() as started:
        yield started


@pytest.fixture
def stack(aws_env: str, receiver: LocalReceiver, tmp_path: Path) -> Stack:
    bucket = f"sfb-e2e-{uuid.uuid4().hex[:16]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    return Stack(aws_env, bucket, s3, receiver, tmp_path / "containers")


@pytest.fixture(autouse=True)
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[LogLines]:
    """Read what the service's own JSON log handler writes, test by test.

    The handler is made once per process (as at a Lambda cold start) and keeps the stream it
    was made with, so each test swaps in a fresh stream and puts the old one back.
    """
    logger = logging.getLogger("sfb")
    level = logger.level
    configure_logging("INFO")
    lines = LogLines()
    handlers = [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and isinstance(h.formatter, JsonFormatter)
    ]
    assert handlers, "the service's JSON log handler is not installed"
    for handler in handlers:
        monkeypatch.setattr(handler, "stream", lines.stream)
    yield lines
    logger.setLevel(level)


@pytest.fixture(scope="module")
def dynalite_url() -> Iterator[str]:
    """dynalite on 127.0.0.1 for one module's races; stopped when the module ends."""
    with ExitStack() as running:
        problem = ""
        try:
            url = running.enter_context(running_dynalite())
        except DynaliteUnavailable as error:
            problem = str(error)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield url
