"""The dynamodb backend's chunk objects on moto: one object a batch, read back part by part,
and deleted only once every file that may need it is closed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from adapters.chunk_objects import OBJECTS, WRITER_SECONDS, S3ChunkObjects, item_key, object_key
from adapters.dynamodb_state import DynamoDbFileStateStore
from application.chunk_objects import StoredChunks
from application.ports import ChunkObjects, StoredChunkState
from application.views import PendingChunks
from domain import Chunk, FileId, FileStatus
from tests.fakes import FakeChunkObjects, FakeClock, FakeRemoteStore, FakeStateStore
from tests.integration.builders import BUCKET, chunk, read_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

NOW = 1_700_000_000.0
A = "https://uploads.example.com/a.bin?X-Amz-Signature=SECRET-A"
B = "https://uploads.example.com/b.bin?X-Amz-Signature=SECRET-B"
FILE_A, FILE_B = FileId.for_endpoint(A), FileId.for_endpoint(B)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def objects(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str, clock: Clock
) -> S3ChunkObjects:
    return S3ChunkObjects(s3_client, BUCKET, dynamodb, table, ttl_seconds=86_400.0, clock=clock)


def keys(s3: S3Client) -> list[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="pending/")
    return [item["Key"] for item in listing.get("Contents", [])]


def stored_as(chunks: list[Chunk], object_id: str) -> dict[int, tuple[str, str]]:
    """What a file's state holds once these chunks were admitted from the object."""
    return {c.partition: (c.ref.digest_prefix, object_id) for c in chunks}


def set_status(dynamodb: DynamoDBClient, table: str, file_id: FileId, status: FileStatus) -> None:
    dynamodb.put_item(
        TableName=table,
        Item={"file_id": {"S": str(file_id)}, "status": {"S": status.value}},
    )


def test_a_batchs_chunks_are_one_object_and_each_part_reads_back_exactly(
    objects: S3ChunkObjects, s3_client: S3Client
) -> None:
    a = [chunk(A, p, 2, f"a{p}".encode() * 100) for p in range(2)]
    b = [chunk(B, 0, 1, b"b" * 333)]

    object_id = objects.store([a[0], b[0], a[1], a[0]])  # the same record twice: stored once

    assert keys(s3_client) == [object_key(object_id)]
    assert len(s3_client.get_object(Bucket=BUCKET, Key=object_key(object_id))["Body"].read()) == (
        200 + 200 + 333
    )
    parts = objects.parts(FILE_A, 2, stored_as(a, object_id))
    assert parts is not None
    assert dict(parts.parts) == {c.partition: c.ref for c in a}
    for c in a:
        assert read_all(objects.open(FILE_A, c.partition, 2, c.ref)) == c.content


class StaleReads:
    """DynamoDB's eventually consistent reads as they may answer right after a write: the
    items not there yet. Records each BatchGetItem's ConsistentRead."""

    def __init__(self, dynamodb: DynamoDBClient) -> None:
        self.consistent: list[bool] = []
        dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", self._before)
        dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", self._after)

    def _before(self, params: dict[str, Any], **_: Any) -> None:
        self.consistent += [bool(r.get("ConsistentRead")) for r in params["RequestItems"].values()]

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        if not self.consistent[-1]:
            parsed["Responses"] = {table: [] for table in parsed.get("Responses", {})}


def test_indexes_are_read_eventually_consistently_and_again_consistently_when_missed(
    objects: S3ChunkObjects, dynamodb: DynamoDBClient
) -> None:
    a = [chunk(A, p, 2, f"a{p}".encode() * 100) for p in range(2)]
    object_id = objects.store(a)
    reads = StaleReads(dynamodb)

    parts = objects.parts(FILE_A, 2, stored_as(a, object_id))

    assert reads.consistent == [False, True], "half the units first, then the missed ones"
    assert parts is not None
    assert dict(parts.parts) == {c.partition: c.ref for c in a}


def test_no_object_or_item_holds_an_endpoint(
    objects: S3ChunkObjects, s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    object_id = objects.store([chunk(A, 0, 1, b"bytes")])

    stored = s3_client.get_object(Bucket=BUCKET, Key=object_key(object_id))
    item = dynamodb.get_item(TableName=table, Key=item_key(object_id))["Item"]
    assert "SECRET" not in repr(item) + repr(stored["Metadata"]) + object_key(object_id)


@pytest.mark.parametrize(
    "stored",
    [
        {0: ("0" * 32, "PLACE")},
        {0: ("PREFIX", "0" * 12)},
        {0: ("PREFIX", "")},
        {},
    ],
    ids=["other-digest", "unknown-object", "no-object-named", "partition-missing"],
)
def test_parts_is_none_unless_every_partition_is_in_the_object_its_state_names(
    objects: S3ChunkObjects, stored: dict[int, tuple[str, str]]
) -> None:
    c = chunk(A, 0, 1, b"bytes")
    object_id = objects.store([c])
    named = {
        p: (c.ref.digest_prefix if d == "PREFIX" else d, object_id if o == "PLACE" else o)
        for p, (d, o) in stored.items()
    }

    assert objects.parts(FILE_A, 1, named) is None


def test_an_object_goes_once_the_last_file_that_took_from_it_is_closed(
    objects: S3ChunkObjects, s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    object_id = objects.store([chunk(A, 0, 1, b"a"), chunk(B, 0, 1, b"b")])
    set_status(dynamodb, table, FILE_A, FileStatus.UPLOADED)
    set_status(dynamodb, table, FILE_B, FileStatus.COLLECTING)

    objects.release(FILE_A, {object_id})
    assert keys(s3_client) == [object_key(object_id)], "B still needs it"

    set_status(dynamodb, table, FILE_B, FileStatus.EXPIRED)
    objects.release(FILE_B, {object_id})
    assert keys(s3_client) == []


def test_files_that_took_nothing_let_go_and_the_last_one_out_deletes(
    objects: S3ChunkObjects, s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    object_id = objects.store([chunk(A, 0, 1, b"a"), chunk(B, 0, 1, b"b")])
    set_status(dynamodb, table, FILE_A, FileStatus.COLLECTING)
    set_status(dynamodb, table, FILE_B, FileStatus.COLLECTING)
    objects.unneeded(object_id, {FILE_B})  # B's chunk was refused
    assert keys(s3_client) == [object_key(object_id)]

    set_status(dynamodb, table, FILE_A, FileStatus.UPLOADED)
    objects.release(FILE_A, {object_id})
    assert keys(s3_client) == [], "B, still collecting, no longer keeps it"


def test_an_object_no_file_took_from_goes_at_once(
    objects: S3ChunkObjects, s3_client: S3Client
) -> None:
    object_id = objects.store([chunk(A, 0, 2, b"a"), chunk(B, 0, 2, b"b")])

    objects.unneeded(object_id, {FILE_A, FILE_B})

    assert keys(s3_client) == []


@pytest.mark.parametrize(
    ("after", "kept"), [(0.0, True), (WRITER_SECONDS + 1, False)], ids=["writer-alive", "ended"]
)
def test_a_file_without_an_item_keeps_the_object_only_while_its_writer_may_still_count_it(
    objects: S3ChunkObjects,
    s3_client: S3Client,
    dynamodb: DynamoDBClient,
    table: str,
    clock: Clock,
    after: float,
    kept: bool,
) -> None:
    object_id = objects.store([chunk(A, 0, 1, b"a"), chunk(B, 0, 1, b"b")])
    set_status(dynamodb, table, FILE_A, FileStatus.UPLOADED)  # B's item: not written yet
    clock.now += after

    objects.release(FILE_A, {object_id})

    assert (keys(s3_client) == [object_key(object_id)]) is kept


def test_an_id_whose_item_exists_is_drawn_again(
    objects: S3ChunkObjects,
    s3_client: S3Client,
    dynamodb: DynamoDBClient,
    table: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    monkeypatch.setattr("adapters.chunk_objects.secrets.token_hex", lambda _: next(ids))
    dynamodb.put_item(TableName=table, Item=item_key("aaaaaaaaaaaa"))  # an older object's

    assert objects.store([chunk(A, 0, 1, b"a")]) == "bbbbbbbbbbbb"
    assert keys(s3_client) == [f"{OBJECTS}bbbbbbbbbbbb"]


def test_the_adapters_and_fakes_fit_the_chunk_objects_ports(
    objects: S3ChunkObjects, dynamodb: DynamoDBClient, table: str
) -> None:
    """mypy checks the fit here: the container wires them through providers it cannot see."""
    port: ChunkObjects = objects
    fake: ChunkObjects = FakeChunkObjects(FakeRemoteStore(), FakeStateStore(), FakeClock())
    state: StoredChunkState = DynamoDbFileStateStore(dynamodb, table, 60.0)
    fake_state: StoredChunkState = FakeStateStore()
    expiry: PendingChunks = StoredChunks(port, state)
    checks: list[object] = [port, fake, state, fake_state, expiry]

    assert len(checks) == 5
