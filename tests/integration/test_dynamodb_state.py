"""The DynamoDB state store on moto, what only it has: TTL attributes, the tombstone's item,
lost answers retried by botocore, item sizes. The rules every shared store holds are in
test_state_store_contract.py (both layouts there too).

Every test runs on both layouts: a small file's digests in its own item, a large file's in
segment items (here forced for small files too). tests/integration/test_dynamodb_segments.py
holds what only the segments have.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from attrs import evolve

from adapters import dynamodb_state
from adapters.dynamodb_state import OPEN_INDEX, DynamoDbFileStateStore
from domain import FileId, FileState, FileStatus, PartitionArrival
from tests.integration.builders import ref_of
from tests.integration.state_steps import (
    CUTOFF,
    ENDPOINT,
    FILE,
    LATER,
    NOW,
    ROOM,
    TTL,
    add,
    complete,
    content,
    make_table_before_the_index,
    only_incomplete,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


DYNAMODB_ITEM_LIMIT = 400_000
"""DynamoDB's 400 KB per item, read as the smaller of 400,000 and 409,600 bytes."""


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
def store(dynamodb: DynamoDBClient, table: str) -> DynamoDbFileStateStore:
    return DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)


def item(dynamodb: DynamoDBClient, table: str, file_id: FileId = FILE) -> dict[str, Any]:
    response = dynamodb.get_item(
        TableName=table, Key={"file_id": {"S": str(file_id)}}, ConsistentRead=True
    )
    return dict(response["Item"])


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


def test_the_assembly_after_a_won_claim_reads_what_the_claim_returned_and_no_item_again(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient
) -> None:
    complete(store, 3)
    expected = store.stored(FILE)
    reads: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.GetItem", lambda **_: reads.append("GetItem")
    )

    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won
    assert store.stored(FILE) == expected
    assert reads == []
    assert store.stored(FILE) == expected  # once only: later reads ask the table
    assert reads == ["GetItem"]


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
        segments = segments_of(dynamodb, table)
        assert len(segments) == len({p // dynamodb_state.SEGMENT_PARTITIONS for p in sampled})
        full_segment = {
            **segments[0],
            **{f"p{i}": {"B": b"d" * 24} for i in range(dynamodb_state.SEGMENT_PARTITIONS)},
        }
        assert item_size(full_segment) <= 1024, "a segment's write is one write unit"


def scan(dynamodb: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    return [dict(i) for i in dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]]


def segments_of(dynamodb: DynamoDBClient, table: str) -> list[dict[str, Any]]:
    """The segment items (``<file id>#<gen>#<n>``): neither a file's item nor its endpoint's."""
    return [i for i in scan(dynamodb, table) if i["file_id"]["S"].count("#") == 2]


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
    assert store.unfinished() == [], "closed: sfb status lists it from its expired/ record"


def _open_in_index(dynamodb: DynamoDBClient, table: str) -> list[str]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, IndexName=OPEN_INDEX)
    return sorted(item["file_id"]["S"] for page in pages for item in page["Items"])


def _uploaded(store: DynamoDbFileStateStore) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner", NOW, NOW + 60).won
    assert store.finish(FILE, "owner", FileStatus.UPLOADED, NOW + 1)


def _failed(store: DynamoDbFileStateStore) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner", NOW, NOW + 60).won
    assert store.finish(FILE, "owner", FileStatus.FAILED, NOW + 1)


def _given_up(store: DynamoDbFileStateStore) -> None:
    add(store, 0, 3)
    assert store.give_up(only_incomplete(store), CUTOFF, LATER)


def _assembling(store: DynamoDbFileStateStore) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner", NOW, NOW + 60).won


def _released(store: DynamoDbFileStateStore) -> None:
    _assembling(store)
    store.release(FILE, "owner", NOW + 1)


@pytest.mark.parametrize(
    ("steps", "open_", "incomplete"),
    [
        (lambda store: add(store, 0, 3), True, True),
        (lambda store: (add(store, 0, 3), add(store, 2, 3)), True, True),
        (_assembling, True, False),
        (_released, True, False),
        (_uploaded, False, False),
        (_failed, False, False),
        (_given_up, False, False),
    ],
    ids=["collecting", "two-chunks", "assembling", "released", "uploaded", "failed", "given-up"],
)
def test_only_open_files_are_in_the_index_of_open_files_and_the_expiry_and_status_read_it(
    store: DynamoDbFileStateStore,
    dynamodb: DynamoDBClient,
    table: str,
    steps: Callable[[DynamoDbFileStateStore], object],
    open_: bool,
    incomplete: bool,
) -> None:
    """Tombstones, segments and chunk objects' items stay out of it: the expiry's reads
    do not grow with what the table keeps for a day or ten."""
    steps(store)
    scans: list[str | None] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Scan",
        lambda params, **_: scans.append(params.get("IndexName")),
    )

    found = store.incomplete()
    listed = store.unfinished()

    assert scans == [OPEN_INDEX, OPEN_INDEX], "the expiry and sfb status read the index only"
    assert _open_in_index(dynamodb, table) == ([str(FILE)] if open_ else [])
    assert [file.file_id for file in found] == ([FILE] if incomplete else [])
    assert [summary.file_id for summary in listed] == ([FILE] if open_ else [])


def test_a_table_without_the_index_of_open_files_is_scanned_whole_with_a_warning(
    dynamodb: DynamoDBClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A table made before the index (sfb provision not run again): the expiry still finds
    every incomplete file."""
    name = f"sfb-old-{uuid.uuid4().hex[:8]}"
    make_table_before_the_index(dynamodb, name)
    store = DynamoDbFileStateStore(dynamodb, name, ttl_seconds=TTL)
    add(store, 0, 3)

    with caplog.at_level("WARNING", logger="sfb"):
        found = store.incomplete()

    assert [file.file_id for file in found] == [FILE]
    assert found[0].received == 1
    assert any("the whole table is scanned" in r.getMessage() for r in caplog.records)
    assert [summary.file_id for summary in store.unfinished()] == [FILE]


def _arrival(partition: int, count: int) -> PartitionArrival:
    return PartitionArrival(ENDPOINT, partition, count, ref_of(content(partition)), ROOM, NOW)


def test_an_add_retried_after_its_answer_was_lost_counts_once_beside_its_object(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient
) -> None:
    with LoseFirstAnswer(dynamodb) as network:
        added = store.add_stored(_arrival(0, 2), "0123456789ab")

    assert network.lost == 1
    assert added == 1, "its own write, not a duplicate: the batch's object stays needed"
    assert store.stored(FILE) == {0: (ref_of(content(0)).digest_prefix, "0123456789ab")}


def test_the_same_chunk_stored_in_another_object_is_a_duplicate_and_the_first_object_stands(
    store: DynamoDbFileStateStore,
) -> None:
    assert store.add_stored(_arrival(0, 2), "aaaaaaaaaaaa") == 1

    refused = store.add_stored(_arrival(0, 2), "bbbbbbbbbbbb")

    assert isinstance(refused, FileState)
    assert refused.held_digest == ref_of(content(0)).digest_prefix
    assert store.stored(FILE)[0][1] == "aaaaaaaaaaaa"
    assert store.digests(FILE) == {0: ref_of(content(0)).digest_prefix}


def test_a_files_partitions_are_counted_together_in_one_request_or_not_at_all(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str, layout: str
) -> None:
    counted = store.add_stored_together([_arrival(0, 4), _arrival(2, 4)], "aaaaaaaaaaaa")

    assert counted == 2
    assert item(dynamodb, table)["byte_count"] == {"N": str(len(content(0)) + len(content(2)))}
    refused = {
        "one of them held already": [_arrival(1, 4), _arrival(2, 4)],
        "another partition count": [_arrival(1, 4), _arrival(3, 5)],
        "one partition twice": [_arrival(1, 4), _arrival(1, 4)],
        "room for one of them only": [
            evolve(_arrival(p, 4), max_file_bytes=3 * len(content(p)) + 1) for p in (1, 3)
        ],
    }
    for why, arrivals in refused.items():
        assert store.add_stored_together(arrivals, "bbbbbbbbbbbb") is None, why
        assert sorted(store.stored(FILE)) == [0, 2], why

    assert store.add_stored_together([_arrival(1, 4), _arrival(3, 4)], "cccccccccccc") == 4
    assert {p: where for p, (_, where) in store.stored(FILE).items()} == {
        0: "aaaaaaaaaaaa",
        1: "cccccccccccc",
        2: "aaaaaaaaaaaa",
        3: "cccccccccccc",
    }


def test_partitions_counted_together_whose_answer_was_lost_are_counted_once(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, layout: str
) -> None:
    """The retried request meets its own partitions: in the file's item it counts nothing,
    and each chunk's own add then finds itself held beside its object and answers as added;
    a reservation of segments goes on to its commits, its own reservations found."""
    with LoseFirstAnswer(dynamodb) as network:
        counted = store.add_stored_together([_arrival(0, 3), _arrival(1, 3)], "0123456789ab")

    assert network.lost == 1
    assert counted == (2 if layout == "segmented" else None)
    assert store.add_stored(_arrival(0, 3), "0123456789ab") == 2
    assert store.add_stored(_arrival(1, 3), "0123456789ab") == 2
    state = store.read(FILE, 0)
    assert state is not None
    assert state.received == 2


# --- where the endpoint is kept -------------------------------------------------------------


def _alone(store: DynamoDbFileStateStore, endpoint: str) -> None:
    for partition in (0, 2):
        arrival = PartitionArrival(endpoint, partition, 4, ref_of(content(partition)), ROOM, NOW)
        assert isinstance(store.add_stored(arrival, "aaaaaaaaaaaa"), int)


def _together(store: DynamoDbFileStateStore, endpoint: str) -> None:
    arrivals = [
        PartitionArrival(endpoint, partition, 4, ref_of(content(partition)), ROOM, NOW)
        for partition in (0, 2)
    ]
    assert store.add_stored_together(arrivals, "bbbbbbbbbbbb") == 2


@pytest.mark.parametrize("adds", [_alone, _together], ids=["alone", "together"])
@pytest.mark.parametrize(
    ("endpoint", "apart"),
    [
        (ENDPOINT, False),
        ("https://uploads.example.com/a.bin?" + "q" * 300, True),
        (LONG_ENDPOINT, True),
    ],
    ids=["short", "presigned", "session-token"],
)
def test_a_long_endpoint_is_kept_in_an_item_of_its_own_written_once_before_the_first_add(
    store: DynamoDbFileStateStore,
    dynamodb: DynamoDBClient,
    table: str,
    adds: Callable[[DynamoDbFileStateStore, str], None],
    endpoint: str,
    apart: bool,
) -> None:
    """Every write of the file's item bills its whole size: a presigned URL in it would cost
    a write unit or two more a chunk. The operators' views and the expiry find it either way."""
    file_id = FileId.for_endpoint(endpoint)
    sent: list[str] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.UpdateItem",
        lambda params, **_: sent.append(params["Key"]["file_id"]["S"]),
    )

    adds(store, endpoint)

    stored = item(dynamodb, table, file_id)
    assert ("put_endpoint" in stored) is not apart
    if apart:
        assert item_size(stored) < 1024, "one write unit an add, whatever the endpoint"
    assert sent[0] == (f"e#{file_id}" if apart else str(file_id)), "the endpoint first"
    assert sent.count(f"e#{file_id}") == (1 if apart else 0), "once a container"
    assert store.endpoint(file_id) == endpoint
    [summary] = store.unfinished()
    assert summary.put_endpoint == endpoint
    [incomplete] = store.incomplete()
    assert incomplete.put_endpoint == (None if apart else endpoint)  # the expiry asks endpoint()
    assert _open_in_index(dynamodb, table) == [str(file_id)], "the endpoint's item is not a file"

    again = DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)
    arrival = PartitionArrival(endpoint, 1, 4, ref_of(content(1)), ROOM, NOW + 1)
    assert again.add_stored(arrival, "cccccccccccc") == 3
    assert sent.count(f"e#{file_id}") == (2 if apart else 0), "another container writes it too"
