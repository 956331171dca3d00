"""S3ShardLedgers: the ledger's object round-trips, reads are answered 304 while nobody
wrote, writes are conditional (an overlapping writer is detected, never overwritten), and
a 403 for a missing key (a role whose listing is narrowed to pending/) is told from a
refused read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from adapters.s3_storage import S3ShardLedgers, ledger_key
from application.ports import ShardLedgerMoved
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

    ledger = ShardLedger(1, frozenset({FILE}), {FileId("ab" * 16): 12.5})
    ledgers.write(SHARD, ledger)

    assert ledgers.read(SHARD) == ledger
    assert S3ShardLedgers(s3, BUCKET).read(SHARD) == ledger
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=f"shards/{SHARD}.json")["Body"].read())
    assert document == {"version": 1, "open": [str(FILE)], "finished": {"ab" * 16: 12.5}}


def statuses(s3: S3Client) -> list[int]:
    """HTTP statuses of the client's GetObject calls, in order."""
    seen: list[int] = []

    def note(http_response: Any, **_: Any) -> None:
        seen.append(http_response.status_code)

    s3.meta.events.register("after-call.s3.GetObject", note)
    return seen


def test_a_read_while_nobody_wrote_is_answered_not_modified_and_one_after_a_write_is_not(
    s3: S3Client,
) -> None:
    mine, theirs = S3ShardLedgers(s3, BUCKET), S3ShardLedgers(client(), BUCKET)
    first = ShardLedger(1, frozenset({FILE}))
    mine.write(SHARD, first)
    answers = statuses(s3)

    assert mine.read(SHARD) == first
    assert mine.read(SHARD) == first
    assert answers == [304, 304]

    second = ShardLedger(2, finished={FILE: 7.0})
    assert theirs.read(SHARD) == first
    theirs.write(SHARD, second)
    assert mine.read(SHARD) == second
    assert answers == [304, 304, 200]


def test_a_write_over_a_ledger_another_writer_changed_raises_and_stores_nothing(
    s3: S3Client,
) -> None:
    mine, theirs = S3ShardLedgers(s3, BUCKET), S3ShardLedgers(client(), BUCKET)
    mine.write(SHARD, ShardLedger(1))
    assert theirs.read(SHARD) == ShardLedger(1)
    theirs_v2 = ShardLedger(2, finished={FILE: 1.0})
    theirs.write(SHARD, theirs_v2)

    with pytest.raises(ShardLedgerMoved):
        mine.write(SHARD, ShardLedger(2, frozenset({FileId("cd" * 16)})))
    assert theirs.read(SHARD) == theirs_v2

    current = mine.read(SHARD)
    assert current == theirs_v2
    mine.write(SHARD, ShardLedger(3, frozenset({FileId("cd" * 16)}), {FILE: 1.0}))
    assert theirs.read(SHARD) == ShardLedger(3, frozenset({FileId("cd" * 16)}), {FILE: 1.0})


@pytest.mark.parametrize(
    ("case", "prepare", "version"),
    [
        ("a first ledger where another writer created one", "other-creates", 1),
        ("a version that does not follow the one read", "read", 3),
        ("any version but the first without a read", "nothing", 2),
    ],
)
def test_a_write_that_does_not_follow_what_was_read_is_refused(
    s3: S3Client, case: str, prepare: str, version: int
) -> None:
    mine = S3ShardLedgers(s3, BUCKET)
    if prepare == "other-creates":
        assert mine.read(SHARD) is None
        S3ShardLedgers(client(), BUCKET).write(SHARD, ShardLedger(1))
    elif prepare == "read":
        mine.write(SHARD, ShardLedger(1))

    with pytest.raises(ShardLedgerMoved):
        mine.write(SHARD, ShardLedger(version, frozenset({FILE})))
    stored = S3ShardLedgers(client(), BUCKET).read(SHARD)
    assert stored is None or FILE not in stored.open, case


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
        stub.add_response("put_object", {"ETag": '"empty"'}, expected)
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
