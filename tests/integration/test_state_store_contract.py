"""The shared state stores' one contract, each against a real server: DynamoDB (moto) with
a file's digests in its item or, as a large file's, in segment items; Redis (redis-server).
Every rule is atomic there (conditional updates, Lua scripts), so containers may race.

What only one store has (TTL attributes, lost answers, item sizes, key layout) is in its own
module: test_dynamodb_state.py, test_dynamodb_segments.py, test_redis_chunks.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
import redis

from adapters import dynamodb_state
from adapters.dynamodb_state import DynamoDbFileStateStore
from adapters.redis_state import RedisFileStateStore
from domain import FileId, FileStatus, IncompleteFile
from tests.integration.builders import ref_of
from tests.integration.state_steps import (
    CUTOFF,
    ENDPOINT,
    FILE,
    LATER,
    NOW,
    TTL,
    StateStore,
    add,
    complete,
    content,
    make_state_table,
    only_incomplete,
    prefix,
)


@pytest.fixture(params=["dynamodb-inline", "dynamodb-segmented", "redis"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[StateStore]:
    if request.param == "redis":
        server = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        server.flushdb()
        yield RedisFileStateStore(server, ttl_seconds=TTL)
        server.close()
        return
    if request.param == "dynamodb-segmented":
        monkeypatch.setattr(dynamodb_state, "INLINE_PARTITIONS", 0)
    request.getfixturevalue("aws")
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    client = boto3.client("dynamodb")
    table = make_state_table(client)
    yield DynamoDbFileStateStore(client, table, ttl_seconds=TTL)


def test_each_new_partition_returns_how_many_partitions_the_file_has_received(
    store: StateStore,
) -> None:
    assert [add(store, partition, 4) for partition in (2, 0, 3)] == [1, 2, 3]

    state = store.read(FILE, 1)

    assert state is not None
    assert (state.partition_count, state.received, state.status) == (4, 3, FileStatus.COLLECTING)
    assert state.size == sum(len(content(p)) for p in (2, 0, 3))
    assert state.held_digest is None
    assert not state.is_complete


def test_a_file_the_store_never_saw_reads_as_none(store: StateStore) -> None:
    assert store.read(FILE, 0) is None
    assert store.digests(FILE) == {}


def test_a_partition_added_again_is_refused_and_read_shows_the_digest_already_held(
    store: StateStore,
) -> None:
    assert add(store, 1, 3) == 1

    assert add(store, 1, 3) is None
    assert add(store, 1, 3, content(1, " but other")) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert state.held_digest == prefix(ref_of(content(1)))
    assert (state.received, state.size) == (1, len(content(1)))


def test_a_chunk_naming_another_partition_count_is_refused_and_the_first_count_stands(
    store: StateStore,
) -> None:
    assert add(store, 0, 3) == 1

    assert add(store, 1, 4) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert (state.partition_count, state.received, state.held_digest) == (3, 1, None)
    assert add(store, 1, 3) == 2


@pytest.mark.parametrize("closed", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_a_closed_file_refuses_every_chunk_even_one_it_never_held(
    store: StateStore, closed: FileStatus
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
    store: StateStore,
) -> None:
    room = 25
    assert add(store, 0, 4, b"x" * 10, room=room) == 1
    assert add(store, 1, 4, b"y" * 10, room=room) == 2

    assert add(store, 2, 4, b"z" * 6, room=room) is None

    state = store.read(FILE, 2)
    assert state is not None
    assert (state.size, state.received, state.held_digest) == (20, 2, None)
    assert add(store, 2, 4, b"z" * 5, room=room) == 3


def test_a_complete_file_is_claimed_once_only(store: StateStore) -> None:
    complete(store, 3)

    claims = [
        store.claim(FILE, owner, NOW, NOW + 60).won for owner in ("owner-a", "owner-b", "owner-a")
    ]

    assert claims == [True, False, False]
    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.ASSEMBLING


def test_an_incomplete_file_cannot_be_claimed(store: StateStore) -> None:
    add(store, 0, 2)

    assert not store.claim(FILE, "owner-a", NOW, NOW + 60).won
    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.COLLECTING


def test_a_second_owner_takes_the_claim_over_only_once_its_lease_has_passed(
    store: StateStore,
) -> None:
    complete(store, 2)
    lease_end = NOW + 900
    assert store.claim(FILE, "dies-mid-upload", NOW, lease_end).won

    assert not store.claim(FILE, "successor", NOW + 899.5, NOW + 1800).won
    assert not store.claim(FILE, "successor", lease_end, lease_end + 900).won
    assert store.claim(FILE, "successor", lease_end + 0.5, lease_end + 900).won

    assert not store.finish(FILE, "dies-mid-upload", FileStatus.UPLOADED, lease_end + 1)
    assert store.finish(FILE, "successor", FileStatus.UPLOADED, lease_end + 2)


def test_release_returns_a_claimed_file_to_collecting_so_anyone_may_claim_it_again(
    store: StateStore,
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    store.release(FILE, "owner-a", NOW + 1)

    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.COLLECTING
    assert store.claim(FILE, "owner-b", NOW + 1, NOW + 61).won


def test_release_by_anyone_but_the_claim_owner_changes_nothing(
    store: StateStore,
) -> None:
    complete(store, 2)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won

    store.release(FILE, "owner-b", NOW + 1)

    assert not store.claim(FILE, "owner-b", NOW + 1, NOW + 61).won
    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 2)


def test_release_does_not_reopen_a_finished_file(store: StateStore) -> None:
    complete(store, 1)
    assert store.claim(FILE, "owner-a", NOW, NOW + 60).won
    assert store.finish(FILE, "owner-a", FileStatus.UPLOADED, NOW + 1)

    store.release(FILE, "owner-a", NOW + 2)

    state = store.read(FILE, 0)
    assert state is not None
    assert state.status is FileStatus.UPLOADED


def test_digests_hold_the_32_hex_digit_prefix_of_every_partition(
    store: StateStore,
) -> None:
    refs = {partition: ref_of(content(partition)) for partition in range(12)}
    for partition in (11, 3, 0, 7, 10, 1, 2, 4, 5, 6, 8, 9):
        add(store, partition, 12)

    assert store.digests(FILE) == {partition: prefix(ref) for partition, ref in refs.items()}
    assert all(len(held) == 32 for held in store.digests(FILE).values())


def test_files_are_kept_apart(store: StateStore) -> None:
    other = "https://uploads.example.com/b.bin"
    add(store, 0, 2)

    assert add(store, 0, 5, endpoint=other) == 1
    state = store.read(FileId.for_endpoint(other), 0)
    assert state is not None
    assert state.partition_count == 5
    assert store.digests(FILE).keys() == {0}


def test_incomplete_lists_only_files_collecting_with_partitions_missing(
    store: StateStore,
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


def test_give_up_refuses_a_file_first_seen_at_or_after_the_cutoff(
    store: StateStore,
) -> None:
    add(store, 0, 3, now=CUTOFF)

    assert not store.give_up(only_incomplete(store), CUTOFF, LATER)
    assert store.read(FILE, 0) is not None
    assert only_incomplete(store).received == 1


def test_a_chunk_completing_the_file_before_the_give_up_wins(
    store: StateStore,
) -> None:
    add(store, 0, 2)
    file = only_incomplete(store)
    add(store, 1, 2)

    assert not store.give_up(file, CUTOFF, LATER)

    assert store.claim(FILE, "owner-a", LATER, LATER + 60).won


def test_an_assembling_or_already_expired_file_is_not_given_up(
    store: StateStore,
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
    store: StateStore,
) -> None:
    add(store, 0, 3)
    assert store.give_up(only_incomplete(store), CUTOFF, LATER)

    assert add(store, 1, 3, now=LATER + 1) is None
    assert add(store, 0, 3, now=LATER + 1) is None

    state = store.read(FILE, 1)
    assert state is not None
    assert (state.status, state.received, state.held_digest) == (FileStatus.EXPIRED, 1, None)
    assert not store.claim(FILE, "owner-a", LATER, LATER + 60).won
