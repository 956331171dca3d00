"""S3ShardLog: the snapshot round-trips, is answered 304 while nobody wrote and is written
conditionally (an overlapping writer is detected, never overwritten), and a 403 for a missing
snapshot is told from a refused read; an entry is created only where none is (412 on an
existing key), its index is read by one suffix-ranged GET without its bytes (two when the
index is long), and each chunk by one ranged GET."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import orjson
import pytest
from attrs import evolve
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws

from adapters.shard_log import S3ShardLog, entry_key, snapshot_key
from application.ports import ShardLedgerMoved
from domain import FileId, LiveEntry, LogEntry, LoggedChunk, LoggedFile, ShardLedger, StoredChunk

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "ledgers"
SHARD = "shardId-000000000001"
URL = "https://example.com/f?sig=SECRET"
FILE = FileId.for_endpoint(URL)
OTHER = FileId("cd" * 16)


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


def open_file(version: int = 1) -> ShardLedger:
    return ShardLedger(
        version,
        seq=2,
        covered=2,
        files={FILE: LoggedFile(3, URL, 5.0, {1: StoredChunk("ab" * 32, 4, 2, 10)})},
        finished={FileId("ab" * 16): 12.5},
        entries={2: LiveEntry("w2", frozenset({FILE}))},
    )


def test_a_shard_without_a_snapshot_reads_none_and_a_written_snapshot_reads_back(
    s3: S3Client,
) -> None:
    log = S3ShardLog(s3, BUCKET)
    assert log.read_snapshot(SHARD) is None

    ledger = open_file()
    log.write_snapshot(SHARD, ledger)

    assert log.read_snapshot(SHARD) == ledger
    assert S3ShardLog(s3, BUCKET).read_snapshot(SHARD) == ledger
    body = s3.get_object(Bucket=BUCKET, Key=f"shards/{SHARD}.json")["Body"].read()
    assert orjson.loads(body)["files"][str(FILE)]["parts"] == [[1, "ab" * 32, 4, 2, 10]]
    head = s3.head_object(Bucket=BUCKET, Key=f"shards/{SHARD}.json")
    assert head["Metadata"] == {}  # the endpoint is in the body only


@pytest.mark.parametrize("lineage", [None, (), ("shardId-000000000001",), ("p1", "p2")])
def test_a_snapshot_stores_the_lineage_once_known_and_never_what_the_parents_hold(
    s3: S3Client, lineage: tuple[str, ...] | None
) -> None:
    inherited = {FileId("cd" * 16): LoggedFile(2, URL, 1.0, {0: StoredChunk("cd" * 32, 1, 1, 0)})}
    ledger = evolve(
        open_file(), lineage=lineage, inherited=inherited, inherited_finished=frozenset(inherited)
    )
    S3ShardLog(s3, BUCKET).write_snapshot(SHARD, ledger)

    read = S3ShardLog(s3, BUCKET).read_snapshot(SHARD)

    assert read is not None
    assert read.lineage == lineage
    assert (read.inherited, read.inherited_finished) == ({}, frozenset())
    body = s3.get_object(Bucket=BUCKET, Key=f"shards/{SHARD}.json")["Body"].read()
    assert b"cdcdcd" not in body
    assert ("lineage" in orjson.loads(body)) == (lineage is not None)


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
    mine, theirs = S3ShardLog(s3, BUCKET), S3ShardLog(client(), BUCKET)
    first = ShardLedger(1, finished={FILE: 1.0})
    mine.write_snapshot(SHARD, first)
    answers = statuses(s3)

    assert mine.read_snapshot(SHARD) == first
    assert mine.read_snapshot(SHARD) == first
    assert answers == [304, 304]

    second = ShardLedger(2, finished={FILE: 7.0})
    assert theirs.read_snapshot(SHARD) == first
    theirs.write_snapshot(SHARD, second)
    assert mine.read_snapshot(SHARD) == second
    assert answers == [304, 304, 200]


def test_a_snapshot_write_over_one_another_writer_changed_raises_and_stores_nothing(
    s3: S3Client,
) -> None:
    mine, theirs = S3ShardLog(s3, BUCKET), S3ShardLog(client(), BUCKET)
    mine.write_snapshot(SHARD, ShardLedger(1))
    assert theirs.read_snapshot(SHARD) == ShardLedger(1)
    theirs_v2 = ShardLedger(2, finished={FILE: 1.0})
    theirs.write_snapshot(SHARD, theirs_v2)

    with pytest.raises(ShardLedgerMoved):
        mine.write_snapshot(SHARD, ShardLedger(2, finished={OTHER: 2.0}))
    assert theirs.read_snapshot(SHARD) == theirs_v2

    assert mine.read_snapshot(SHARD) == theirs_v2
    mine.write_snapshot(SHARD, ShardLedger(3, finished={FILE: 1.0, OTHER: 2.0}))
    assert theirs.read_snapshot(SHARD) == ShardLedger(3, finished={FILE: 1.0, OTHER: 2.0})


@pytest.mark.parametrize(
    ("case", "prepare", "version"),
    [
        ("a first snapshot where another writer created one", "other-creates", 1),
        ("a version that does not follow the one read", "read", 3),
        ("any version but the first without a read", "nothing", 2),
    ],
)
def test_a_snapshot_write_that_does_not_follow_what_was_read_is_refused(
    s3: S3Client, case: str, prepare: str, version: int
) -> None:
    mine = S3ShardLog(s3, BUCKET)
    if prepare == "other-creates":
        assert mine.read_snapshot(SHARD) is None
        S3ShardLog(client(), BUCKET).write_snapshot(SHARD, ShardLedger(1))
    elif prepare == "read":
        mine.write_snapshot(SHARD, ShardLedger(1))

    with pytest.raises(ShardLedgerMoved):
        mine.write_snapshot(SHARD, ShardLedger(version, finished={FILE: 1.0}))
    stored = S3ShardLog(client(), BUCKET).read_snapshot(SHARD)
    assert stored is None or not stored.knows(FILE), case


@pytest.mark.parametrize(
    ("create_answer", "reads_as"),
    [
        (None, "a new shard: an empty snapshot is created, the read is None"),
        ("PreconditionFailed", "a snapshot exists but may not be read: the 403 is raised"),
    ],
)
def test_a_403_for_the_snapshot_is_told_apart_by_creating_it_only_if_absent(
    create_answer: str | None, reads_as: str
) -> None:
    s3 = client()
    stub = Stubber(s3)
    stub.add_client_error("get_object", "AccessDenied", http_status_code=403)
    expected = {
        "Bucket": BUCKET,
        "Key": snapshot_key(SHARD),
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
            assert S3ShardLog(s3, BUCKET).read_snapshot(SHARD) is None, reads_as
        else:
            with pytest.raises(ClientError, match="AccessDenied"):
                S3ShardLog(s3, BUCKET).read_snapshot(SHARD)
    stub.assert_no_pending_responses()


def entry(seq: int, contents: list[bytes], writer: str = "me") -> LogEntry:
    chunks, at = [], 0
    for partition, content in enumerate(contents):
        chunks.append(
            LoggedChunk(FILE, partition, len(contents), f"{partition:064x}", at, len(content))
        )
        at += len(content)
    return LogEntry(seq, 9.5, writer, tuple(chunks), {FILE: URL}, {OTHER: 3.0})


def test_an_entry_is_created_once_read_back_without_its_bytes_and_its_chunks_by_range(
    s3: S3Client,
) -> None:
    log = S3ShardLog(s3, BUCKET)
    contents = [b"first chunk", b"", b"third"]
    written = entry(1, contents)
    assert log.read_entry(SHARD, 1) is None

    log.write_entry(SHARD, written, contents)
    with pytest.raises(ShardLedgerMoved):
        S3ShardLog(client(), BUCKET).write_entry(SHARD, entry(1, [b"other"], "them"), [b"other"])

    ranges: list[str] = []
    s3.meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: ranges.append(params["headers"]["Range"])
    )
    assert log.read_entry(SHARD, 1) == written
    assert ranges == ["bytes=-65536"]
    read = [log.open_chunk(SHARD, 1, c.offset, c.size).read() for c in written.chunks]
    assert read == contents
    assert ranges[1:] == ["bytes=0-10", "bytes=11-15"]  # the empty chunk costs no request
    head = s3.head_object(Bucket=BUCKET, Key=entry_key(SHARD, 1))
    assert head["Metadata"] == {}


def test_an_index_longer_than_the_probe_is_read_by_a_second_ranged_get(s3: S3Client) -> None:
    log = S3ShardLog(s3, BUCKET)
    contents = [bytes([n % 251]) * 40 for n in range(2000)]  # an index of about 200 KB
    written = entry(7, contents)
    log.write_entry(SHARD, written, contents)

    assert log.read_entry(SHARD, 7) == written
    assert log.open_chunk(SHARD, 7, written.chunks[1999].offset, 40).read() == contents[1999]


def test_deleted_entries_read_as_missing_and_the_shards_are_listed_from_both_prefixes(
    s3: S3Client,
) -> None:
    log = S3ShardLog(s3, BUCKET)
    log.write_entry(SHARD, entry(1, [b"a"]), [b"a"])
    log.write_entry(SHARD, entry(2, [b"b"]), [b"b"])
    log.write_snapshot("shardId-000000000002", ShardLedger(1))

    log.delete_entries(SHARD, [1, 3])

    assert log.read_entry(SHARD, 1) is None
    assert log.read_entry(SHARD, 2) is not None
    assert log.shards() == [SHARD, "shardId-000000000002"]


def test_a_ledger_of_the_layout_before_the_log_reads_as_a_snapshot_of_its_finished_files(
    s3: S3Client,
) -> None:
    old = {"version": 4, "open": [str(OTHER)], "finished": {str(FILE): 12.5}}
    s3.put_object(Bucket=BUCKET, Key=snapshot_key(SHARD), Body=orjson.dumps(old))
    log = S3ShardLog(s3, BUCKET)

    assert log.read_snapshot(SHARD) == ShardLedger(4, finished={FILE: 12.5})
    log.write_snapshot(SHARD, ShardLedger(5, finished={FILE: 12.5}))  # written over it
    assert S3ShardLog(client(), BUCKET).read_snapshot(SHARD) == ShardLedger(
        5, finished={FILE: 12.5}
    )
