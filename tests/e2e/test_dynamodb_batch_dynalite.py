"""The state table's batch requests against dynalite, a real DynamoDB server: its limits (100
keys, 25 items a request, no key twice in one) and its reads, for the lookup and the
tombstones the whole-file path sends (the contracts of tests/integration/test_dynamodb_batch.py).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import boto3
import pytest

from tests.e2e.dynalite import create_state_table
from tests.integration.test_dynamodb_batch import lookup_contract, tombstone_contract

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def dynalite(dynalite_url: str) -> DynamoDBClient:
    return boto3.client(
        "dynamodb",
        endpoint_url=dynalite_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # dynalite checks nothing
    )


@pytest.fixture
def table(dynalite: DynamoDBClient) -> str:
    name = f"sfb-batch-{uuid.uuid4().hex[:12]}"
    create_state_table(dynalite, name)
    return name


def test_the_lookup_says_which_files_have_no_item_on_a_real_server(
    dynalite: DynamoDBClient, table: str
) -> None:
    lookup_contract(dynalite, table)


def test_tombstones_read_as_closed_files_on_a_real_server(
    dynalite: DynamoDBClient, table: str
) -> None:
    tombstone_contract(dynalite, table)
