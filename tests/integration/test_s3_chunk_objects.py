"""The dynamodb backend's chunk objects on moto: one object a batch, read back part by part,
and deleted only once every file that may need it is closed."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ReadTimeoutError

from adapters.chunk_objects import OBJECTS, WRITER_SECONDS, S3ChunkObjects, item_key, object_key
from adapters.dynamodb_state import DynamoDbFileStateStore
from application.body import AssembledBody, ChunkUnavailable, Part
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
    objects: S3ChunkObjects, dynamodb: DynamoDBClient, s3_client: S3Client, table: str
) -> None:
    a = [chunk(A, p, 2, f"a{p}".encode() * 100) for p in range(2)]
    object_id = objects.store(a)
    elsewhere = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, ttl_seconds=86_400.0)
    reads = StaleReads(dynamodb)

    parts = elsewhere.parts(FILE_A, 2, stored_as(a, object_id))

    assert reads.consistent == [False, True], "half the units first, then the missed ones"
    assert parts is not None
    assert dict(parts.parts) == {c.partition: c.ref for c in a}
    assert elsewhere.parts(FILE_A, 2, stored_as(a, object_id)) == parts
    assert len(reads.consistent) == 2, "an index read once is not read again"


def test_a_container_knows_the_indexes_of_the_objects_it_stored(
    objects: S3ChunkObjects, dynamodb: DynamoDBClient
) -> None:
    a = [chunk(A, p, 2, f"a{p}".encode() * 100) for p in range(2)]
    object_id = objects.store(a)
    reads = StaleReads(dynamodb)

    assert objects.parts(FILE_A, 2, stored_as(a, object_id)) is not None
    assert reads.consistent == []


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


# --- a closer that read the objects' indexes decides from the other files' items ----------

C = "https://uploads.example.com/c.bin?X-Amz-Signature=SECRET-C"
FILE_C = FileId.for_endpoint(C)


def put_file(
    dynamodb: DynamoDBClient, table: str, file_id: FileId, status: FileStatus, **more: Any
) -> None:
    item = {"file_id": {"S": str(file_id)}, "status": {"S": status.value}, **more}
    dynamodb.put_item(TableName=table, Item=item)


def naming(object_id: str) -> dict[str, Any]:
    """A partition in a file's own item, held in ``object_id``."""
    return {"p0": {"B": b"\x01" * 16 + bytes.fromhex(object_id)}}


def object_items_read(dynamodb: DynamoDBClient) -> list[str]:
    """The chunk objects' items each BatchGetItem of the client asks for."""
    read: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        for request in params["RequestItems"].values():
            read.extend(k["file_id"]["S"] for k in request["Keys"] if k["file_id"]["S"][:2] == "o#")

    dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", count)
    return read


OTHERS: dict[str, tuple[dict[str, Any], bool, bool]] = {
    # case: (B's item, whether the object is kept, whether the object's item is read)
    "B closed": ({"status": FileStatus.UPLOADED}, False, False),
    "B open, naming the object": ({"status": FileStatus.COLLECTING, "names": True}, True, False),
    "B open, let go of it (took nothing)": (
        {"status": FileStatus.COLLECTING, "unneeded": True},
        False,
        True,
    ),
    "B open, may still take from it": ({"status": FileStatus.COLLECTING}, True, True),
    "B open, in segments": ({"status": FileStatus.COLLECTING, "segments": True}, True, True),
    "B without an item, its writer alive": ({}, True, True),
}


@pytest.mark.parametrize(("b", "kept", "item_read"), OTHERS.values(), ids=OTHERS.keys())
def test_a_closer_that_found_its_parts_decides_from_the_other_files_items(
    objects: S3ChunkObjects,
    s3_client: S3Client,
    dynamodb: DynamoDBClient,
    table: str,
    b: dict[str, Any],
    kept: bool,
    item_read: bool,
) -> None:
    a = chunk(A, 0, 1, b"a")
    object_id = objects.store([a, chunk(B, 0, 1, b"b"), chunk(C, 0, 1, b"c")])
    assert objects.parts(FILE_A, 1, stored_as([a], object_id)) is not None
    if "status" in b:
        more = naming(object_id) if b.get("names") else {}
        if b.get("segments"):
            more = {"gen": {"S": "g1"}, "r3": {"B": b"\x02" * 38}}
        put_file(dynamodb, table, FILE_B, b["status"], **more)
    if b.get("unneeded"):  # while A and C collect (no item yet): their writer may count them
        objects.unneeded(object_id, {FILE_B})
        assert keys(s3_client) == [object_key(object_id)]
    put_file(dynamodb, table, FILE_A, FileStatus.UPLOADED)
    put_file(dynamodb, table, FILE_C, FileStatus.FAILED)
    read = object_items_read(dynamodb)

    objects.release(FILE_A, {object_id})

    assert (keys(s3_client) == [object_key(object_id)]) is kept
    assert bool(read) is item_read


# --- a file's chunks that follow each other in an object: one ranged read -----------------


def gets_of(s3: S3Client) -> list[str]:
    ranges: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: ranges.append(str(params.get("Range", ""))),
    )
    return ranges


def body_of_file(
    objects: S3ChunkObjects, chunks: list[Chunk], where: dict[int, str], read_ahead: int
) -> AssembledBody:
    count = len(chunks)
    parts = objects.parts(
        chunks[0].file_id, count, {p: (c.ref.digest_prefix, where[p]) for p, c in enumerate(chunks)}
    )
    assert parts is not None
    return AssembledBody(
        tuple(
            Part(parts.parts[p], partial(objects.open, chunks[0].file_id, p, count, parts.parts[p]))
            for p in range(count)
        ),
        read_ahead=read_ahead,
    )


def a_file(count: int) -> list[Chunk]:
    return [chunk(A, p, count, f"a{p:03d}".encode() * 250) for p in range(count)]


def one_object(objects: S3ChunkObjects, a: list[Chunk]) -> dict[int, str]:
    object_id = objects.store([*a, chunk(B, 0, 1, b"b" * 999)])
    return dict.fromkeys(range(len(a)), object_id)


def interleaved(objects: S3ChunkObjects, a: list[Chunk]) -> dict[int, str]:
    """B's chunks between A's in the batch: the object still keeps A's together."""
    mixed = [c for p, mine in enumerate(a) for c in (mine, chunk(B, p, len(a), b"b" * 77))]
    return dict.fromkeys(range(len(a)), objects.store(mixed))


def two_objects(objects: S3ChunkObjects, a: list[Chunk]) -> dict[int, str]:
    half = len(a) // 2
    first, second = objects.store(a[:half]), objects.store(a[half:])
    return {p: first if p < half else second for p in range(len(a))}


def every_other(objects: S3ChunkObjects, a: list[Chunk]) -> dict[int, str]:
    """Even partitions in one object, odd in another (chunks spread over two shards)."""
    even, odd = objects.store(a[0::2]), objects.store(a[1::2])
    return {p: even if p % 2 == 0 else odd for p in range(len(a))}


RUNS: dict[str, tuple[int, Callable[[S3ChunkObjects, list[Chunk]], dict[int, str]], int]] = {
    # case: (partitions, how the batches stored them, ranged reads with a window of 8)
    "one object": (4, one_object, 1),
    "another file's chunks between them": (4, interleaved, 1),
    "two objects": (6, two_objects, 2),
    "every other partition apart": (6, every_other, 2),
    "more than the window": (12, one_object, 2),
}


@pytest.mark.parametrize("read_ahead", [8, 1], ids=["read ahead", "one after another"])
@pytest.mark.parametrize(("count", "stored", "reads"), RUNS.values(), ids=RUNS.keys())
def test_a_files_chunks_that_follow_each_other_in_an_object_are_read_together(
    s3_client: S3Client,
    dynamodb: DynamoDBClient,
    table: str,
    count: int,
    stored: Callable[[S3ChunkObjects, list[Chunk]], dict[int, str]],
    reads: int,
    read_ahead: int,
) -> None:
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=8)
    a = a_file(count)
    body = body_of_file(objects, a, stored(objects, a), read_ahead)
    gets = gets_of(s3_client)

    assert read_all(body.open()) == b"".join(c.content for c in a)
    assert len(gets) == reads
    assert read_all(body.open()) == b"".join(c.content for c in a), "a retried upload"
    assert len(gets) == 2 * reads, "reads them again: nothing is kept once each was served"


def test_files_assembled_at_once_read_each_object_they_share_once(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    """Producers interleaved: each batch's object holds a chunk of A and one of B. Once both
    files complete, A's reads bring B's chunks along and B's body reads nothing."""
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=8)
    a = a_file(3)
    b = [chunk(B, p, 3, f"b{p:03d}".encode() * 200) for p in range(3)]
    where = [objects.store([a[p], b[p]]) for p in range(3)]
    bodies = [body_of_file(objects, f, dict(enumerate(where)), read_ahead=8) for f in (a, b)]
    gets = gets_of(s3_client)

    assert read_all(bodies[0].open()) == b"".join(c.content for c in a)
    assert read_all(bodies[1].open()) == b"".join(c.content for c in b)
    assert len(gets) == 3, "one read an object"


def test_a_chunk_read_from_disk_is_read_from_its_object_alone_when_the_disk_fails(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=8)
    a = a_file(3)
    object_id = objects.store(a)
    parts = objects.parts(FILE_A, 3, stored_as(a, object_id), held={1})
    assert parts is not None
    gets = gets_of(s3_client)

    assert read_all(objects.open(FILE_A, 1, 3, parts.parts[1])) == a[1].content
    assert read_all(objects.open(FILE_A, 0, 3, parts.parts[0])) == a[0].content
    assert read_all(objects.open(FILE_A, 2, 3, parts.parts[2])) == a[2].content
    size = len(a[0].content)
    assert gets == [
        f"bytes={size}-{2 * size - 1}",
        f"bytes=0-{3 * size - 1}",
    ], "the held chunk alone; the others in one read, over the held one's bytes"
    objects.assembled(FILE_A)
    assert read_all(objects.open(FILE_A, 2, 3, parts.parts[2])) == a[2].content
    assert gets[-1] == f"bytes={2 * size}-{3 * size - 1}", "once its upload ended: alone"


def test_a_run_whose_read_failed_is_read_again_by_the_next_attempt(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=8)
    a = a_file(4)
    body = body_of_file(objects, a, one_object(objects, a), 8)
    failures = [ReadTimeoutError(endpoint_url="s3")]

    def fail_once(**_: Any) -> None:
        if failures:
            raise failures.pop()

    s3_client.meta.events.register("before-call.s3.GetObject", fail_once)

    with pytest.raises(ChunkUnavailable):
        read_all(body.open())
    assert read_all(body.open()) == b"".join(c.content for c in a)


def test_without_read_ahead_each_chunk_is_read_alone(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    """ASSEMBLY_READ_AHEAD=1 holds one chunk at a time: no read takes more."""
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=1)
    a = a_file(4)
    body = body_of_file(objects, a, one_object(objects, a), 1)
    gets = gets_of(s3_client)

    assert read_all(body.open()) == b"".join(c.content for c in a)
    assert len(gets) == 4


def test_two_closers_in_one_container_delete_an_object_once(
    objects: S3ChunkObjects, s3_client: S3Client, dynamodb: DynamoDBClient, table: str
) -> None:
    """Two files' lanes closing at once both find the other closed: one request, and the
    object's item is left to its TTL (a delete would cost a write unit)."""
    a, b = chunk(A, 0, 1, b"a"), chunk(B, 0, 1, b"b")
    object_id = objects.store([a, b])
    assert objects.parts(FILE_A, 1, stored_as([a], object_id)) is not None
    assert objects.parts(FILE_B, 1, stored_as([b], object_id)) is not None
    put_file(dynamodb, table, FILE_A, FileStatus.UPLOADED)
    put_file(dynamodb, table, FILE_B, FileStatus.UPLOADED)
    deletes: list[str] = []
    for client in (s3_client, dynamodb):
        client.meta.events.register(
            "before-call", lambda model, **_: deletes.append(model.name), unique_id=str(client)
        )

    objects.release(FILE_A, {object_id})
    objects.release(FILE_B, {object_id})

    assert keys(s3_client) == []
    assert [d for d in deletes if d in ("DeleteObjects", "BatchWriteItem")] == ["DeleteObjects"]
    assert "Item" in dynamodb.get_item(TableName=table, Key=item_key(object_id))
