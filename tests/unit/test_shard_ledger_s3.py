"""S3ShardLedgers: the ledger's object round-trips, and a 403 for a missing key (a role
whose listing is narrowed to pending/) is told from a refused read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from adapters.s3_storage import S3ShardLedgers, ledger_key
from domain import FileId, ShardLedger

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "ledgers"
SHARD = "shardId-000000000001"
FILE = FileId.for_endpoint("https://example.com/f?sig=SECRET")


def client() -> S3Client:
    return boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def s3() -> Iterator[S3Client]:
    with mock_aws():
        s3 = client()
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_a_shard_without_a_ledger_reads_none_and_a_written_ledger_reads_back(
    s3: S3Client,
) -> None:
    ledgers = S3ShardLedgers(s3, BUCKET)
    assert ledgers.read(SHARD) is None

    ledger = ShardLedger(3, frozenset({FILE}), {FileId("ab" * 16): 12.5})
    ledgers.write(SHARD, ledger)

    assert ledgers.read(SHARD) == ledger
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=f"shards/{SHARD}.json")["Body"].read())
    assert document == {"version": 3, "open": [str(FILE)], "finished": {"ab" * 16: 12.5}}


@pytest.mark.parametrize(
    ("create_answer", "reads_as"),
    [
        (None, "a new shard: an empty ledger is created, the read is None"),
        ("PreconditionFailed", "a ledger exists but may not be read: the 403 is raised"),
    ],
)
def test_a_403_for_the_ledger_is_told_apart_by_creating_it_only_if_absent(
    create_answer: str | None, reads_as: str
) -> None:
    s3 = client()
    stub = Stubber(s3)
    stub.add_client_error("get_object", "AccessDenied", http_status_code=403)
    expected = {
        "Bucket": BUCKET,
        "Key": ledger_key(SHARD),
        "Body": ANY,
        "ContentType": "application/json",
        "IfNoneMatch": "*",
    }
    if create_answer is None:
        stub.add_response("put_object", {}, expected)
    else:
        stub.add_client_error(
            "put_object", create_answer, http_status_code=412, expected_params=expected
        )

    with stub:
        if create_answer is None:
            assert S3ShardLedgers(s3, BUCKET).read(SHARD) is None, reads_as
        else:
            with pytest.raises(ClientError, match="AccessDenied"):
                S3ShardLedgers(s3, BUCKET).read(SHARD)
    stub.assert_no_pending_responses()
