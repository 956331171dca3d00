"""A large file's state on moto: digests in segment items, a chunk reserved in the file's item
then committed in its segment, and every crash between the two repaired, never counted twice.

These files are made "large" by lowering INLINE_PARTITIONS, so a few partitions show what
tens of thousands would.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from adapters import dynamodb_state
from adapters.dynamodb_state import SEGMENT_PARTITIONS, DynamoDbFileStateStore
from application.chunk_objects import COUNTED_TOGETHER_MOST
from domain import FileId, FileState, FileStatus, PartitionArrival
from tests.integration.builders import ref_of
from tests.integration.state_steps import (
    ENDPOINT,
    FILE,
    NOW,
    ROOM,
    TTL,
    add,
    content,
    offer,
    prefix,
)
from tests.integration.test_dynamodb_state import (
    LONG_ENDPOINT,
    item,
    item_size,
    segments_of,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture(autouse=True)
def segmented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dynamodb_state, "INLINE_PARTITIONS", 2)


@pytest.fixture
def store(dynamodb: DynamoDBClient, table: str) -> DynamoDbFileStateStore:
    return fresh(dynamodb, table)


class Crash(Exception):
    """The invocation died here: the request was never sent."""


class Network:
    """Fails or loses the answer to chosen UpdateItems of a client, as a crash or a reset
    connection would, by which item they change and in which order."""

    def __init__(self, dynamodb: DynamoDBClient) -> None:
        self._events = dynamodb.meta.events
        self._crash: Callable[[dict[str, Any]], bool] = lambda _: False
        self._lose: Callable[[dict[str, Any]], bool] = lambda _: False
        self.lost = 0
        self._keys: dict[int, dict[str, Any]] = {}
        self._before: Callable[..., None] = self._before_call
        self._retry: Callable[..., Any] = self._needs_retry

    def __enter__(self) -> Network:
        self._events.register_first("before-parameter-build.dynamodb.UpdateItem", self._before)
        self._events.register_first("needs-retry.dynamodb.UpdateItem", self._retry)
        return self

    def __exit__(self, *_: object) -> None:
        self._events.unregister("before-parameter-build.dynamodb.UpdateItem", self._before)
        self._events.unregister("needs-retry.dynamodb.UpdateItem", self._retry)

    def crash_at(self, when: Callable[[dict[str, Any]], bool]) -> None:
        self._crash = once(when)

    def lose_answer_of(self, when: Callable[[dict[str, Any]], bool]) -> None:
        self._lose = once(when)

    def _before_call(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if self._crash(params):
            raise Crash(params["UpdateExpression"])
        context["lose"] = self._lose(params)

    def _needs_retry(self, attempts: int, request_dict: dict[str, Any], **_: Any) -> float | None:
        if attempts == 1 and request_dict.get("context", {}).get("lose"):
            self.lost += 1
            return 0.0  # applied, its answer gone: botocore sends the same request again
        return None


def once(when: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    fired = False

    def check(params: dict[str, Any]) -> bool:
        nonlocal fired
        if fired or not when(params):
            return False
        fired = True
        return True

    return check


def reserve(params: dict[str, Any]) -> bool:
    return "#r = :reservation" in params["UpdateExpression"]


def commit(params: dict[str, Any]) -> bool:
    return "#" in params["Key"]["file_id"]["S"]


def commit_of(partition: int) -> Callable[[dict[str, Any]], bool]:
    slot = f"p{partition % SEGMENT_PARTITIONS}"
    return lambda params: commit(params) and params["ExpressionAttributeNames"]["#slot"] == slot


def take_back(params: dict[str, Any]) -> bool:
    return str(params["UpdateExpression"]).startswith("REMOVE #r")


@pytest.fixture
def network(dynamodb: DynamoDBClient) -> Iterator[Network]:
    with Network(dynamodb) as network:
        yield network


def fresh(dynamodb: DynamoDBClient, table: str) -> DynamoDbFileStateStore:
    """Another container (or this one after a cold start): it remembers nothing."""
    return DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)


def held(store: DynamoDbFileStateStore) -> tuple[int, int]:
    state = store.read(FILE, 0)
    assert state is not None
    return state.received, state.size


def sizes(count: int, partitions: list[int]) -> int:
    return sum(len(content(p)) for p in partitions)


# --- a crash between the two requests ------------------------------------------------------


def test_a_chunk_reserved_but_never_committed_still_counts_with_its_digest(
    store: DynamoDbFileStateStore, network: Network
) -> None:
    """Its chunk was stored before the reservation: the file can complete and be checked."""
    add(store, 0, 3)
    add(store, 1, 3)
    network.crash_at(commit)

    with pytest.raises(Crash):
        add(store, 2, 3)

    assert held(store) == (3, sizes(3, [0, 1, 2]))
    assert store.digests(FILE) == {p: prefix(ref_of(content(p))) for p in range(3)}
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won


@pytest.mark.parametrize("last", [False, True], ids=["a middle chunk", "the last chunk"])
def test_the_redelivery_of_a_chunk_that_crashed_after_its_reservation_counts_it_once(
    store: DynamoDbFileStateStore,
    network: Network,
    dynamodb: DynamoDBClient,
    table: str,
    last: bool,
) -> None:
    partitions = [0, 2, 1] if last else [0, 1, 2]
    crashing = partitions[-1] if last else partitions[1]
    network.crash_at(commit_of(crashing))
    for partition in partitions:
        if partition == crashing:
            with pytest.raises(Crash):
                add(store, partition, 3)
        else:
            add(store, partition, 3)

    again = offer(fresh(dynamodb, table), crashing, 3)

    assert isinstance(again, FileState), "a duplicate of what its first delivery counted"
    assert again.held_digest == prefix(ref_of(content(crashing)))
    assert again.received == 3
    assert again.is_complete, "the redelivery finds the file complete, and completes it"
    assert held(store) == (3, sizes(3, [0, 1, 2]))
    [segment] = segments_of(dynamodb, table)
    assert f"p{crashing}" in segment, "committed on its first delivery's behalf"


@pytest.mark.parametrize(
    "then",
    ["the duplicate comes again", "the missing chunk arrives", "the file is claimed"],
)
def test_a_duplicate_that_crashed_before_taking_its_reservation_back_is_uncounted_later(
    store: DynamoDbFileStateStore,
    network: Network,
    dynamodb: DynamoDBClient,
    table: str,
    then: str,
) -> None:
    """Partition 0 again, after its own reservation was swept: it is reserved (counted) and
    its commit finds 0 committed; the crash leaves 3 of 3 counted with partition 2 missing."""
    add(store, 0, 3)
    add(store, 1, 3)  # sweeps partition 0's reservation
    assert add(store, 0, 3) is None, "a duplicate"
    network.crash_at(take_back)
    with pytest.raises(Crash):
        offer(store, 0, 3, content(0, " other bytes"))
    assert held(store)[0] == 3, "counted twice until someone meets it"
    other = fresh(dynamodb, table)

    if then == "the duplicate comes again":
        again = offer(other, 0, 3, content(0, " other bytes"))
        assert isinstance(again, FileState)
        assert again.held_digest == prefix(ref_of(content(0))), "the first bytes stand"
        assert (again.received, again.is_complete) == (2, False)
    elif then == "the missing chunk arrives":
        assert add(other, 2, 3) == 3, "the completing chunk completes the file"
    else:
        assert other.claim(FILE, "owner-a", NOW, NOW + 60).won
        assert other.digests(FILE).keys() == {0, 1}, "its assembly finds a chunk missing"
        assert held(store)[0] == 2
        other.release(FILE, "owner-a", NOW + 1)
        assert add(other, 2, 3) == 3
    assert other.digests(FILE)[0] == prefix(ref_of(content(0)))


@pytest.mark.parametrize("step", [reserve, commit, take_back], ids=lambda s: s.__name__)
def test_a_request_sent_again_after_its_answer_was_lost_changes_nothing_twice(
    store: DynamoDbFileStateStore, network: Network, step: Callable[[dict[str, Any]], bool]
) -> None:
    add(store, 0, 3)
    add(store, 1, 3)
    network.lose_answer_of(step)

    if step is take_back:  # a duplicate's reservation, taken back
        add(store, 2, 3)  # sweeps partition 0's reservation, so a duplicate of 0 reserves
        assert add(store, 0, 3, content(0, " other bytes")) is None
    else:
        assert add(store, 2, 3) == 3

    assert network.lost == 1
    assert held(store) == (3, sizes(3, [0, 1, 2]))
    assert store.digests(FILE) == {p: prefix(ref_of(content(p))) for p in range(3)}


# --- duplicates, conflicts, room ----------------------------------------------------------


@pytest.mark.parametrize("swept", [False, True], ids=["reservation still there", "swept"])
@pytest.mark.parametrize("same", [True, False], ids=["same bytes", "other bytes"])
def test_a_partition_sent_again_is_refused_with_the_digest_that_stands(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str, swept: bool, same: bool
) -> None:
    add(store, 1, 3)
    if swept:
        add(store, 2, 3)

    again = offer(fresh(dynamodb, table), 1, 3, content(1, "" if same else " other"))

    assert isinstance(again, FileState)
    assert again.held_digest == prefix(ref_of(content(1)))
    assert held(store) == ((2, sizes(3, [1, 2])) if swept else (1, sizes(3, [1])))


def test_room_taken_by_a_duplicates_leftover_reservation_is_given_back_to_a_new_partition(
    store: DynamoDbFileStateStore, network: Network, dynamodb: DynamoDBClient, table: str
) -> None:
    room = 40
    assert add(store, 0, 3, b"x" * 10, room=room) == 1
    assert add(store, 1, 3, b"y" * 10, room=room) == 2
    network.crash_at(take_back)
    with pytest.raises(Crash):
        offer(store, 0, 3, b"z" * 10, room=room)  # counted 30 bytes, 10 of them a duplicate's

    assert add(fresh(dynamodb, table), 2, 3, b"w" * 12, room=room) == 3
    assert held(store) == (3, 32)


# --- the file's item stays small ----------------------------------------------------------


def test_the_files_item_holds_one_reservation_per_container_however_many_chunks_it_took(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    count = 400
    other = fresh(dynamodb, table)
    order = random.Random(7).sample(range(count), k=count)
    sizes_seen = []
    for n, partition in enumerate(order):
        assert add(store if n % 2 else other, partition, count, endpoint=ENDPOINT) is not None
        sizes_seen.append(item_size(item(dynamodb, table)))

    reservations = [
        name for name in item(dynamodb, table) if name.startswith("r") and name[1:].isdigit()
    ]
    assert len(reservations) == 2
    assert max(sizes_seen[10:]) - min(sizes_seen[10:]) <= 8, "it does not grow with the file"
    segments = segments_of(dynamodb, table)
    assert len(segments) == count // SEGMENT_PARTITIONS + 1
    assert max(item_size(s) for s in segments) <= 1024
    assert store.digests(FILE) == {p: prefix(ref_of(content(p))) for p in range(count)}
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won


def test_a_file_of_81920_partitions_counts_each_one_it_was_given(
    store: DynamoDbFileStateStore,
) -> None:
    """A 5 GiB file in 64 KiB chunks; sparse, since every partition would take minutes."""
    count = 81_920
    given = sorted(
        {0, 31, 32, 15_000, 20_000, count - 1, *random.Random(3).sample(range(count), 200)}
    )
    for partition in given:
        assert add(store, partition, count, endpoint=LONG_ENDPOINT) is not None

    state = store.read(FileId.for_endpoint(LONG_ENDPOINT), 20_000)
    assert state is not None
    assert (state.received, state.partition_count) == (len(given), count)
    assert state.held_digest == prefix(ref_of(content(20_000)))
    assert store.digests(FileId.for_endpoint(LONG_ENDPOINT)) == {
        p: prefix(ref_of(content(p))) for p in given
    }
    [incomplete] = store.incomplete()
    assert (incomplete.received, incomplete.partition_count) == (len(given), count)
    refused = store.claim(FileId.for_endpoint(LONG_ENDPOINT), "owner-a", NOW, NOW + 60)
    assert not refused.won
    assert refused.refused_by is not None
    assert refused.refused_by.received == len(given)


# --- a file started again, what operators see ----------------------------------------------


def test_a_file_started_again_after_its_item_expired_never_meets_the_old_segments(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    add(store, 0, 3)
    add(store, 1, 3)
    dynamodb.delete_item(TableName=table, Key={"file_id": {"S": str(FILE)}})  # its TTL

    assert add(fresh(dynamodb, table), 1, 3, content(1, " new")) == 1
    assert fresh(dynamodb, table).digests(FILE) == {1: prefix(ref_of(content(1, " new")))}


def test_operators_see_files_never_their_segments(store: DynamoDbFileStateStore) -> None:
    for partition in (0, 1, 40):
        add(store, partition, 41)

    [unfinished] = store.unfinished()
    [incomplete] = store.incomplete()

    assert (unfinished.file_id, unfinished.received, unfinished.status) == (
        FILE,
        3,
        FileStatus.COLLECTING.value,
    )
    assert (incomplete.file_id, incomplete.received) == (FILE, 3)


def test_a_full_segment_with_each_partitions_chunk_object_stays_one_write_unit(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str
) -> None:
    count = 10 * SEGMENT_PARTITIONS
    for partition in range(SEGMENT_PARTITIONS):
        arrival = PartitionArrival(
            ENDPOINT, partition, count, ref_of(content(partition)), 5 * 1024**3, NOW
        )
        assert isinstance(store.add_stored(arrival, f"{partition:012x}"), int)

    [segment] = segments_of(dynamodb, table)
    assert len([name for name in segment if name.startswith("p")]) == SEGMENT_PARTITIONS
    assert item_size(segment) <= 1024
    assert store.stored(FILE)[SEGMENT_PARTITIONS - 1][1] == f"{SEGMENT_PARTITIONS - 1:012x}"


# --- a batch's chunks of a file counted together -------------------------------------------

COUNT = 60
"""Partitions of a file whose runs cross from one segment to the next."""
OBJECT, OTHER_OBJECT = "0123456789ab", "ba9876543210"


def arrival(partition: int, data: bytes | None = None) -> PartitionArrival:
    chunk = content(partition) if data is None else data
    return PartitionArrival(ENDPOINT, partition, COUNT, ref_of(chunk), ROOM, NOW)


def together(store: DynamoDbFileStateStore, partitions: list[int]) -> int | None:
    return store.add_stored_together([arrival(p) for p in partitions], OBJECT)


def reserve_together(params: dict[str, Any]) -> bool:
    return "#r0 = :r0" in params["UpdateExpression"]


def where(store: DynamoDbFileStateStore) -> dict[int, str]:
    return {p: object_id for p, (_, object_id) in store.stored(FILE).items()}


@pytest.mark.parametrize(
    ("partitions", "requests"),
    [([3, 4, 5, 6], 2), ([26, 27, 28, 29], 3), ([0, 59], 3)],
    ids=["one segment", "two segments", "far apart"],
)
def test_a_batchs_chunks_of_a_file_take_one_reservation_and_one_commit_a_segment(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, partitions: list[int], requests: int
) -> None:
    sent: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda **_: sent.append("UpdateItem")
    )

    assert together(store, partitions) == len(partitions)

    assert len(sent) == requests, "alone, each chunk would take two"
    assert held(store) == (len(partitions), sizes(COUNT, partitions))
    assert store.digests(FILE) == {p: prefix(ref_of(content(p))) for p in partitions}
    assert where(store) == dict.fromkeys(partitions, OBJECT)


def _lose_reservation(network: Network) -> None:
    network.lose_answer_of(reserve_together)


def _lose_a_commit(network: Network) -> None:
    network.lose_answer_of(commit)


def _crash_before_the_commits(network: Network) -> None:
    network.crash_at(commit)


def _crash_between_the_commits(network: Network) -> None:
    network.crash_at(lambda params: commit(params) and params["Key"]["file_id"]["S"][-1] == "1")


@pytest.mark.parametrize(
    "fault",
    [_lose_reservation, _lose_a_commit, _crash_before_the_commits, _crash_between_the_commits],
    ids=lambda f: f.__name__.strip("_").replace("_", " "),
)
def test_a_run_hit_by_a_lost_answer_or_a_crash_counts_each_partition_once(
    store: DynamoDbFileStateStore,
    network: Network,
    dynamodb: DynamoDBClient,
    table: str,
    fault: Callable[[Network], None],
) -> None:
    """A crash leaves the run's records to be delivered again, into another object: each is
    then a duplicate of what the crashed batch counted, whose object stands."""
    run = [26, 27, 28, 29]
    fault(network)
    try:
        counted = together(store, run)
    except Crash:
        again = fresh(dynamodb, table)
        for partition in run:
            refused = again.add_stored(arrival(partition), OTHER_OBJECT)
            assert isinstance(refused, FileState), "a duplicate"
            assert refused.held_digest == prefix(ref_of(content(partition)))
    else:
        assert network.lost == 1
        assert counted == len(run)

    assert held(store) == (len(run), sizes(COUNT, run))
    assert store.digests(FILE) == {p: prefix(ref_of(content(p))) for p in run}
    assert where(store) == dict.fromkeys(run, OBJECT)
    assert add(store, 0, COUNT) == len(run) + 1, "the next chunk counts on top"


@pytest.mark.parametrize("same", [True, False], ids=["same bytes", "other bytes"])
def test_a_run_with_a_partition_counted_before_leaves_each_chunk_to_be_added_alone(
    store: DynamoDbFileStateStore, same: bool
) -> None:
    """Partition 0's reservation was swept after its commit, so the run reserves it again;
    its commit finds 0 committed: 0 is taken back, the others stay counted and answer as
    added when they are added alone, 0 as a duplicate or a conflict."""
    assert store.add_stored(arrival(0), OTHER_OBJECT) == 1
    assert store.add_stored(arrival(1), OTHER_OBJECT) == 2  # sweeps partition 0's reservation
    zero = content(0) if same else content(0, " other bytes")
    run = [arrival(0, zero), arrival(2), arrival(3)]

    assert store.add_stored_together(run, OBJECT) is None

    refused = store.add_stored(run[0], OBJECT)
    assert isinstance(refused, FileState)
    assert refused.held_digest == prefix(ref_of(content(0))), "the first bytes stand"
    assert store.add_stored(run[1], OBJECT) == 4
    assert store.add_stored(run[2], OBJECT) == 4
    assert held(store) == (4, sizes(COUNT, [0, 1, 2, 3]))
    assert where(store) == {0: OTHER_OBJECT, 1: OTHER_OBJECT, 2: OBJECT, 3: OBJECT}


def test_a_run_is_counted_together_up_to_the_most_one_expression_holds(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient
) -> None:
    """DynamoDB's expressions are at most 4 KB: the application cuts longer runs, and the
    store sends none it is given."""
    sent: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda **_: sent.append("UpdateItem")
    )
    too_many = [arrival(p) for p in range(COUNTED_TOGETHER_MOST + 1)]

    assert store.add_stored_together(too_many, OBJECT) is None
    assert sent == []
    assert store.add_stored_together(too_many[:-1], OBJECT) == COUNTED_TOGETHER_MOST
    assert held(store)[0] == COUNTED_TOGETHER_MOST


@pytest.mark.parametrize("status", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_a_closed_files_segments_go_with_its_close_and_a_late_chunk_brings_none_back(
    store: DynamoDbFileStateStore, dynamodb: DynamoDBClient, table: str, status: FileStatus
) -> None:
    """Every run of the expiry's Scan would read them until their TTL; nothing judges a
    late chunk of a closed file by its digests."""
    count = 2 * SEGMENT_PARTITIONS + 1
    for partition in range(count):
        add(store, partition, count)
    assert len(segments_of(dynamodb, table)) == 3
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    assert store.finish(FILE, "owner-a", status, NOW + 1)

    assert segments_of(dynamodb, table) == []
    late = offer(fresh(dynamodb, table), count - 1, count)  # its reservation is still there
    assert isinstance(late, FileState)
    assert late.status is status
    assert segments_of(dynamodb, table) == [], "a late chunk settles nothing of a closed file"


def test_segments_that_cannot_be_deleted_leave_the_close_standing(
    store: DynamoDbFileStateStore,
    dynamodb: DynamoDBClient,
    table: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    count = SEGMENT_PARTITIONS + 1
    for partition in range(count):
        add(store, partition, count)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    def refuse(**_: Any) -> None:
        raise RuntimeError("throttled")

    dynamodb.meta.events.register("before-call.dynamodb.BatchWriteItem", refuse)
    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 1)

    assert len(segments_of(dynamodb, table)) == 2, "left to their TTL"
    assert "segments could not be deleted" in caplog.text
