"""The DynamoDB state store on moto: every change is made by conditional updates.

Every test runs on both layouts: a small file's digests in its own item, a large file's in
segment items (here forced for small files too). tests/integration/test_dynamodb_segments.py
holds what only the segments have.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from adapters import dynamodb_state
from adapters.dynamodb_state import DynamoDbFileStateStore
from domain import (
    DIGEST_PREFIX,
    ChunkRef,
    FileId,
    FileState,
    FileStatus,
    IncompleteFile,
    PartitionArrival,
)
from tests.integration.builders import ref_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL = 86_400.0
NOW = 1_700_000_000.0
ROOM = 5 * 1024**3
"""MAX_FILE_BYTES where a test is not about it."""
DYNAMODB_ITEM_LIMIT = 400_000
"""DynamoDB's 400 KB per item, read as the smaller of 400,000 and 409,600 bytes."""
ENDPOINT = "https://uploads.example.com/a.bin?X-Amz-Signature=s3cr3t"
FILE = FileId.for_endpoint(ENDPOINT)
LONG_ENDPOINT = (
    "https://a-bucket-with-a-long-name.s3.eu-west-1.amazonaws.com/some/deep/key.bin"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Security-Token="
    + "T" * 1800
    + "&X-Amz-Signature="
    + "f" * 64
)
"""A presigned URL with a session token: about as long as they come."""


@pytest.fixture(autouse=True, params=["inline", "segmented"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the digests go: the file's item, or (no file being small enough) segments."""
    layout: str = request.param
    if layout == "segmented":
        monkeypatch.setattr(dynamodb_state, "INLINE_PARTITIONS", 0)
    return layout


@pytest.fixture
def dynamodb(aws: None, monkeypatch: pytest.MonkeyPatch) -> DynamoDBClient:
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    return boto3.client("dynamodb")


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> str:
    name = f"sfb-state-{uuid.uuid4().hex[:12]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "file_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def store(dynamodb: DynamoDBClient, table: str) -> DynamoDbFileStateStore:
    return DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)


def content(partition: int, variant: str = "") -> bytes:
    return f"partition {partition} bytes{variant}".encode()


def add(
    store: DynamoDbFileStateStore,
    partition: int,
    count: int,
    data: bytes | None = None,
    *,
    endpoint: str = ENDPOINT,
    room: int = ROOM,
    now: float = NOW,
) -> int | None:
    added = offer(store, partition, count, data, endpoint=endpoint, room=room, now=now)
    return added if isinstance(added, int) else None


def offer(
    store: DynamoDbFileStateStore,
    partition: int,
    count: int,
    data: bytes | None = None,
    *,
    endpoint: str = ENDPOINT,
    room: int = ROOM,
    now: float = NOW,
) -> int | FileState:
    """Add a chunk: how many partitions the file holds after it, or the state that refused it."""
    chunk = content(partition) if data is None else data
    return store.add_chunk(
        PartitionArrival(endpoint, partition, count, ref_of(chunk), max_file_bytes=room, now=now)
    )


def complete(store: DynamoDbFileStateStore, count: int) -> None:
    for partition in range(count):
        assert add(store, partition, count) is not None


def item(dynamodb: DynamoDBClient, table: str, file_id: FileId = FILE) -> dict[str, Any]:
    response = dynamodb.get_item(
        TableName=table, Key={"file_id": {"S": str(file_id)}}, ConsistentRead=True
    )
    return dict(response["Item"])


def prefix(ref: ChunkRef) -> str:
    return ref.digest[:DIGEST_PREFIX]


def test_each_new_partition_returns_how_many_partitions_the_file_has_received(
    store: DynamoDbFileStateStore,
) -> None:
    assert [add(store, partition, 4) for partition in (2, 0, 3)] == [1, 2, 3]

    state = store.read(FILE, 1)

    assert state is not None
    assert (state.partition_count, state.received, state.status) == (4, 3, FileStatus.COLLECTING)
    assert state.size == sum(len(content(p)) for p in (2, 0, 3))
    assert state.held_digest is None
    assert not state.is_complete


def test_a_file_the_store_never_saw_reads_as_none(store: DynamoDbFileStateStore) -> None:
    assert store.read(FILE, 0) is None
    assert store.digests(FILE) == {}


def test_a_partition_added_again_is_refused_and_read_shows_the_digest_already_held(
    store: DynamoDbFileStateStore,
) -> None:
    assert add(store, 1, 3) == 1

    assert add(store, 1, 3) is None
    assert add(store, 1, 3, content(1, " but other")) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert state.held_digest == prefix(ref_of(content(1)))
    assert (state.received, state.size) == (1, len(content(1)))


def test_a_chunk_naming_another_partition_count_is_refused_and_the_first_count_stands(
    store: DynamoDbFileStateStore,
) -> None:
    assert add(store, 0, 3) == 1

    assert add(store, 1, 4) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert (state.partition_count, state.received, state.held_digest) == (3, 1, None)
    assert add(store, 1, 3) == 2


@pytest.mark.parametrize("closed", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_a_closed_file_refuses_every_chunk_even_one_it_never_held(
    store: DynamoDbFileStateStore, closed: FileStatus
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won
    assert store.finish(FILE, "owner-a", closed, NOW + 1)

    assert add(store, 0, 2) is None
    assert add(store, 2, 2) is None

    state = store.read(FILE, 2)
    assert state is not None
    assert (state.status, state.received, state.held_digest) == (closed, 2, None)


def test_a_chunk_is_refused_when_the_file_would_grow_past_max_file_bytes(
    store: DynamoDbFileStateStore,
) -> None:
    room = 25
    assert add(store, 0, 4, b"x" * 10, room=room) == 1
    assert add(store, 1, 4, b"y" * 10, room=room) == 2

    assert add(store, 2, 4, b"z" * 6, room=room) is None

    state = store.read(FILE, 2)
    assert state is not None
    assert (state.size, state.received, state.held_digest) == (20, 2, None)
    assert add(store, 2, 4, b"z" * 5, room=room) == 3


def test_a_complete_file_is_claimed_once_only(store: DynamoDbFileStateStore) -> None:
    complete(store, 3)

    claims = [
        store.claim(FILE, owner, NOW, NOW + 60).won for owner in ("owner-a", "owner-b", "owner-a")
    ]

    assert claims == [True, False, False]
    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.ASSEMBLING


def test_an_incomplete_file_cannot_be_claimed(store: DynamoDbFileStateStore) -> None:
    add(store, 0, 2)

    assert not store.claim(FILE, "owner-a", NOW, NOW + 60).won
    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.COLLECTING


def test_a_second_owner_takes_the_claim_over_only_once_its_lease_has_passed(
    store: DynamoDbFileStateStore,
) -> None:
    complete(store, 2)
    lease_end = NOW + 900
    assert store.claim(FILE, "dies-mid-upload", NOW, lease_end).won

    assert not store.claim(FILE, "successor", NOW + 899.5, NOW + 1800).won
    assert not store.claim(FILE, "successor", lease_end, lease_end + 900).won
    assert store.claim(FILE, "successor", lease_end + 0.5, lease_end + 900).won

    assert not store.finish(FILE, "dies-mid-upload", FileStatus.UPLOADED, lease_end + 1)
    assert store.finish(FILE, "successor", FileStatus.UPLOADED, lease_end + 2)


def test_only_the_claim_owner_finishes_and_an_uploaded_file_is_kept_as_a_tombstone_until_its_ttl(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    assert not store.finish(FILE, "owner-b", FileStatus.UPLOADED, NOW + 5)
    assert item(dynamodb, table)["status"] == {"S": "assembling"}

    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 10.25)

    tombstone = item(dynamodb, table)
    assert tombstone["status"] == {"S": "uploaded"}
    assert tombstone["expires_at"] == {"N": str(int(NOW + 10.25 + TTL))}
    assert "claim_owner" not in tombstone
    assert "claim_until" not in tombstone
    assert not store.finish(FILE, "owner-b", FileStatus.UPLOADED, NOW + 11)
    assert not store.finish(FILE, "owner-a", FileStatus.FAILED, NOW + 11)


def test_a_file_still_collecting_expires_a_ttl_after_its_last_chunk(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    add(store, 0, 3, now=NOW)
    add(store, 2, 3, now=NOW + 100)

    assert item(dynamodb, table)["expires_at"] == {"N": str(int(NOW + 100 + TTL))}


def test_a_collecting_file_outlives_its_expiry_so_the_expiry_run_reports_it_before_the_ttl(
    dynamodb: DynamoDBClient, table: str
) -> None:
    store = DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL, incomplete_ttl_seconds=500)
    add(store, 0, 3, now=NOW)

    assert item(dynamodb, table)["expires_at"] == {"N": str(int(NOW + 500 + TTL))}


def test_release_returns_a_claimed_file_to_collecting_so_anyone_may_claim_it_again(
    store: DynamoDbFileStateStore,
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    store.release(FILE, "owner-a", NOW + 1)

    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.COLLECTING
    assert store.claim(FILE, "owner-b", NOW + 1, NOW + 61).won


def test_release_by_anyone_but_the_claim_owner_changes_nothing(
    store: DynamoDbFileStateStore,
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    store.release(FILE, "owner-b", NOW + 1)

    assert not store.claim(FILE, "owner-b", NOW + 1, NOW + 61).won
    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 2)


def test_release_does_not_reopen_a_finished_file(store: DynamoDbFileStateStore) -> None:
    complete(store, 1)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won
    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 1)

    store.release(FILE, "owner-a", NOW + 2)

    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.UPLOADED


class LoseFirstAnswer:
    """Drops the answer to the client's next UpdateItem after DynamoDB applied it, as a
    connection reset would: botocore's retry then sends the same request again."""

    EVENT = "needs-retry.dynamodb.UpdateItem"

    def __init__(self, dynamodb: DynamoDBClient) -> None:
        self._events = dynamodb.meta.events
        # A needs-retry handler answers with a delay; the stubs type every handler as None.
        self._handler: Callable[..., Any] = self._retry_once
        self.lost = 0

    def __enter__(self) -> LoseFirstAnswer:
        self._events.register_first(self.EVENT, self._handler)
        return self

    def __exit__(self, *_: object) -> None:
        self._events.unregister(self.EVENT, self._handler)

    def _retry_once(self, attempts: int, **_: Any) -> float | None:
        if self.lost or attempts != 1:
            return None
        self.lost += 1
        return 0.0  # retry at once: the request was applied, only its answer is gone


@pytest.mark.parametrize("closed", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_a_finish_retried_after_its_answer_was_lost_succeeds_for_its_owner(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str, closed: FileStatus
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    with LoseFirstAnswer(dynamodb) as network:
        assert store.finish(FILE, "owner-a", closed, NOW + 1)

    assert network.lost == 1
    tombstone = item(dynamodb, table)
    assert tombstone["status"] == {"S": closed.value}
    assert tombstone["finished_by"] == {"S": "owner-a"}
    assert not store.claim(FILE, "owner-b", NOW + 100, NOW + 160).won


def test_claim_and_release_keep_an_unfinished_files_item_as_long_as_a_chunk_does(
    dynamodb: DynamoDBClient, table: str
) -> None:
    store = DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL, incomplete_ttl_seconds=500)
    add(store, 0, 1, now=NOW)

    assert store.claim(FILE, "owner-a", NOW + 1_000, NOW + 1_060).won
    assert item(dynamodb, table)["expires_at"] == {"N": str(int(NOW + 1_000 + TTL + 500))}

    store.release(FILE, "owner-a", NOW + 2_000)
    assert item(dynamodb, table)["expires_at"] == {"N": str(int(NOW + 2_000 + TTL + 500))}

    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 3_000) is False
    assert store.claim(FILE, "owner-b", NOW + 3_000, NOW + 3_060).won
    assert store.finish(FILE, "owner-b", FileStatus.UPLOADED, NOW + 3_001)
    assert item(dynamodb, table)["expires_at"] == {"N": str(int(NOW + 3_001 + TTL))}


def test_digests_hold_the_32_hex_digit_prefix_of_every_partition(
    store: DynamoDbFileStateStore,
) -> None:
    refs = {partition: ref_of(content(partition)) for partition in range(12)}
    for partition in (11, 3, 0, 7, 10, 1, 2, 4, 5, 6, 8, 9):
        add(store, partition, 12)

    assert store.digests(FILE) == {partition: prefix(ref) for partition, ref in refs.items()}
    assert all(len(held) == 32 for held in store.digests(FILE).values())


def test_files_are_kept_apart(store: DynamoDbFileStateStore) -> None:
    other = "https://uploads.example.com/b.bin"
    add(store, 0, 2)

    assert add(store, 0, 5, endpoint=other) == 1
    state = store.read(FileId.for_endpoint(other), 0)
    assert state is not None
    assert state.partition_count == 5
    assert store.digests(FILE).keys() == {0}


def test_no_item_outgrows_dynamodbs_item_size_limit_whatever_the_partition_count(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str, layout: str
) -> None:
    """A small file's item holds its digests (at most INLINE_PARTITIONS of them); a large
    file's item holds none, and its segments SEGMENT_PARTITIONS each. The inline item is
    counted at its fullest from one digest of every name length."""
    inline = dynamodb_state.INLINE_PARTITIONS
    count = inline if layout == "inline" else 81_920
    sampled = sorted({0, 9, 10, 99, inline - 1, count // 2, count - 1})
    for partition in sampled:
        assert add(store, partition, count, endpoint=LONG_ENDPOINT, now=NOW + 10**9) is not None

    stored = item(dynamodb, table, FileId.for_endpoint(LONG_ENDPOINT))
    digests = [value for name, value in stored.items() if name[0] in "pr" and name[1:].isdigit()]
    full = {
        **stored,
        **({f"p{p}": digests[0] for p in range(count)} if layout == "inline" else {}),
        "received_count": {"N": str(count)},
        "byte_count": {"N": str(ROOM)},
        "status": {"S": FileStatus.ASSEMBLING.value},
        "claim_owner": {"S": uuid.uuid4().hex},
        "claim_until": {"N": f"{NOW + 10**9:.3f}"},
        "finished_at": {"N": f"{NOW + 10**9:.3f}"},
    }

    assert item_size(full) < DYNAMODB_ITEM_LIMIT
    if layout == "segmented":
        assert len(digests) <= 1, "one reservation at most waits to be swept"
        segments = [i for i in scan(dynamodb, table) if "#" in i["file_id"]["S"]]
        assert len(segments) == len({p // dynamodb_state.SEGMENT_PARTITIONS for p in sampled})
        full_segment = {
            **segments[0],
            **{f"p{i}": {"B": b"d" * 24} for i in range(dynamodb_state.SEGMENT_PARTITIONS)},
        }
        assert item_size(full_segment) <= 1024, "a segment's write is one write unit"


def scan(dynamodb: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    return [dict(i) for i in dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]]


def item_size(attributes: dict[str, Any]) -> int:
    """An item's size as DynamoDB counts it: each attribute's name plus its value."""
    return sum(len(name.encode()) + attribute_size(value) for name, value in attributes.items())


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's documented sizes: UTF-8 for strings, raw bytes for binary, and for numbers
    one byte per two significant digits plus one."""
    [(kind, data)] = value.items()
    if kind == "S":
        return len(str(data).encode())
    if kind == "B":
        return len(bytes(data))
    if kind == "N":
        digits = Decimal(str(data)).normalize().as_tuple().digits
        return -(-len(digits) // 2) + 1
    raise AssertionError(f"no size rule for attribute type {kind}")


# Expiry of incomplete files

CUTOFF = NOW + 1
"""A give-up's cutoff (now less INCOMPLETE_FILE_TTL_SECONDS) just after the file began."""
LATER = NOW + 90_000


def only_incomplete(store: DynamoDbFileStateStore) -> IncompleteFile:
    [file] = store.incomplete()
    return file


def test_incomplete_lists_only_files_collecting_with_partitions_missing(
    store: DynamoDbFileStateStore,
) -> None:
    add(store, 0, 3, now=NOW + 5)
    add(store, 2, 3, now=NOW + 9)
    done = "https://uploads.example.com/done.bin"
    add(store, 0, 1, endpoint=done)  # complete, never claimed: redrivable, not expired
    claimed = "https://uploads.example.com/claimed.bin"
    add(store, 0, 1, endpoint=claimed)
    assert store.claim(FileId.for_endpoint(claimed), "owner-a", NOW, NOW + 60).won

    file = only_incomplete(store)

    assert (file.file_id, file.partition_count, file.received) == (FILE, 3, 2)
    assert file.size == len(content(0)) + len(content(2))
    assert file.first_seen == NOW + 5
    assert file.put_endpoint == ENDPOINT


def test_give_up_closes_the_file_as_expired_in_one_conditional_update(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    add(store, 0, 3)

    assert store.give_up(only_incomplete(store), CUTOFF, LATER)

    stored = item(dynamodb, table)
    assert stored["status"] == {"S": FileStatus.EXPIRED.value}
    assert stored["finished_at"] == {"N": f"{LATER:.3f}"}
    assert stored["expires_at"] == {"N": str(int(LATER + TTL))}
    assert store.incomplete() == []
    assert store.unfinished()[0].status == FileStatus.EXPIRED.value


def test_give_up_refuses_a_file_first_seen_at_or_after_the_cutoff(
    store: DynamoDbFileStateStore,
) -> None:
    add(store, 0, 3, now=CUTOFF)

    assert not store.give_up(only_incomplete(store), CUTOFF, LATER)
    assert store.read(FILE, 0) is not None
    assert only_incomplete(store).received == 1


def test_a_chunk_completing_the_file_before_the_give_up_wins(
    store: DynamoDbFileStateStore,
) -> None:
    add(store, 0, 2)
    file = only_incomplete(store)
    add(store, 1, 2)

    assert not store.give_up(file, CUTOFF, LATER)

    assert store.claim(FILE, "owner-a", LATER, LATER + 60).won


def test_an_assembling_or_already_expired_file_is_not_given_up(
    store: DynamoDbFileStateStore,
) -> None:
    add(store, 0, 2)
    file = only_incomplete(store)
    assert store.give_up(file, CUTOFF, LATER)
    assert not store.give_up(file, CUTOFF, LATER + 1)

    other = "https://uploads.example.com/assembling.bin"
    add(store, 0, 1, endpoint=other)
    other_id = FileId.for_endpoint(other)
    assert store.claim(other_id, "owner-a", NOW, NOW + 60).won
    assembling = IncompleteFile(other_id, 1, 0, 0, NOW)
    assert not store.give_up(assembling, CUTOFF, LATER)
    state = store.read(other_id, 0)
    assert state is not None
    assert state.status is FileStatus.ASSEMBLING


def test_an_expired_file_refuses_every_chunk_and_reads_as_expired(
    store: DynamoDbFileStateStore,
) -> None:
    add(store, 0, 3)
    assert store.give_up(only_incomplete(store), CUTOFF, LATER)

    assert add(store, 1, 3, now=LATER + 1) is None
    assert add(store, 0, 3, now=LATER + 1) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert (state.status, state.received, state.held_digest) == (FileStatus.EXPIRED, 1, None)
    assert not store.claim(FILE, "owner-a", LATER, LATER + 60).won
