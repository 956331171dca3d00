"""Random schedules of a large file's state on moto: batches of its chunks, duplicates and
other bytes among them, counted together or alone as the application counts them, across
containers, with requests whose answers are lost and invocations that die between any two
requests. The adapter itself, not a model of it, decides every outcome; `make chaos` runs
more of them.

What must hold at the end: every partition counted once, by a chunk that was delivered;
each chunk answered as added stands with its bytes in its own object (the file holds that
object); each chunk refused was refused with what stands, and never stands from its object.
"""

from __future__ import annotations

import random
import secrets
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters import dynamodb_state
from adapters.dynamodb_state import DynamoDbFileStateStore
from application.chunk_objects import COUNTED_TOGETHER_MOST
from domain import FileId, FileState, PartitionArrival
from tests.integration.builders import ref_of
from tests.integration.state_steps import ENDPOINT, NOW, ROOM, TTL, make_state_table
from tests.integration.test_dynamodb_segments import Crash, Network

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COUNT = 40
"""Partitions: two segments of 28."""

Record = tuple[int, bytes]
"""A chunk as a producer sent it: its partition and its bytes."""


@pytest.fixture(autouse=True)
def segmented(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over 2 partitions keep their digests in segments."""
    monkeypatch.setattr(dynamodb_state, "INLINE_PARTITIONS", 2)


def bytes_of(partition: int, variant: int) -> bytes:
    return f"partition {partition} bytes, variant {variant}".encode()


def stream(rng: random.Random) -> list[Record]:
    """Every partition once, shuffled a little; some sent again, some with other bytes."""
    records = [(p, bytes_of(p, 0)) for p in range(COUNT)]
    for _ in range(rng.randrange(0, 12)):
        p = rng.randrange(COUNT)
        again = (p, bytes_of(p, rng.choice([0, 0, 1])))
        records.insert(rng.randrange(len(records) + 1), again)
    for _ in range(rng.randrange(0, 20)):
        i, j = rng.randrange(len(records)), rng.randrange(len(records))
        if abs(i - j) < 6:
            records[i], records[j] = records[j], records[i]
    return records


LONG_ENDPOINT = f"{ENDPOINT}&X-Amz-Security-Token={'T' * 1000}"
"""Over ENDPOINT_INLINE_MOST: kept in an item of its own, written before the first add."""


def arrival(record: Record, endpoint: str) -> PartitionArrival:
    partition, content = record
    return PartitionArrival(endpoint, partition, COUNT, ref_of(content), ROOM, NOW)


Answer = tuple[Record, str, int | FileState]
"""A chunk, the object it was stored in, and what the state answered."""


def deliver(
    store: DynamoDbFileStateStore, batch: list[Record], object_id: str, endpoint: str
) -> list[Answer]:
    """As SharedIngestChunk counts a batch: from each chunk not yet counted, its file's next
    new chunks together (up to the first partition met again), else that chunk alone; the
    same record twice in the batch is counted once."""
    answers: list[Answer] = []
    done: set[Record] = set()
    for at, record in enumerate(batch):
        if record in done:
            continue
        run, seen = [record], {record[0]}
        for other in batch[at + 1 :]:
            if other in done or other[0] in seen or len(run) == COUNTED_TOGETHER_MOST:
                break
            seen.add(other[0])
            run.append(other)
        if len(run) > 1:
            counted = store.add_stored_together([arrival(r, endpoint) for r in run], object_id)
            if counted is not None:
                answers += [(r, object_id, counted) for r in run]
                done.update(run)
                continue
        answers.append((record, object_id, store.add_stored(arrival(record, endpoint), object_id)))
        done.add(record)
    return answers


def nth(n: int) -> Any:
    """A predicate true of the n-th UpdateItem it is asked about."""
    seen = 0

    def check(_: dict[str, Any]) -> bool:
        nonlocal seen
        seen += 1
        return seen == n

    return check


@settings(
    max_examples=max(8, settings().max_examples // 4),  # ~1 s each on moto
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), long_endpoint=st.booleans())
def test_every_partition_counts_once_whatever_is_lost_or_dies_between_two_requests(
    dynamodb: DynamoDBClient, seed: int, long_endpoint: bool
) -> None:
    rng = random.Random(seed)
    endpoint = LONG_ENDPOINT if long_endpoint else ENDPOINT
    file = FileId.for_endpoint(endpoint)
    table = make_state_table(dynamodb)

    def container() -> DynamoDbFileStateStore:
        return DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)

    containers = [container(), container()]
    pending = stream(rng)
    answers: list[Answer] = []
    crashes = lost = 0
    for _ in range(500):
        if not pending:
            break
        size = rng.randrange(1, 7)
        batch, pending = pending[:size], pending[size:]
        which = rng.randrange(len(containers))
        with Network(dynamodb) as network:
            fault = rng.random()
            if fault < 0.2:
                network.crash_at(nth(rng.randrange(1, 6)))
            elif fault < 0.4:
                network.lose_answer_of(nth(rng.randrange(1, 6)))
            try:
                answers += deliver(containers[which], batch, secrets.token_hex(6), endpoint)
            except Crash:
                crashes += 1
                containers[which] = container()  # the invocation died; its records come again
                pending = batch + pending
            lost += network.lost
    else:
        raise AssertionError("the stream never drained")

    final = container()
    stored = final.stored(file)  # takes back what a crashed duplicate left counted
    state = final.read(file, 0)
    assert state is not None
    assert final.endpoint(file) == endpoint, "whatever died, the endpoint is kept"
    sent = {ref_of(content).digest_prefix: (p, len(content)) for (p, content), _, _ in answers}
    assert sorted(stored) == list(range(COUNT)), "every partition counted"
    for partition, (digest, _) in stored.items():
        assert sent.get(digest, (None, 0))[0] == partition, "what stands was sent"
    assert state.received == COUNT, "each counted once"
    assert state.size == sum(sent[digest][1] for digest, _ in stored.values())
    for (partition, content), object_id, answer in answers:
        digest = ref_of(content).digest_prefix
        if isinstance(answer, int):
            assert stored[partition] == (digest, object_id), "added: stands from its object"
        else:
            assert answer.held_digest == stored[partition][0], "refused with what stands"
            assert stored[partition] != (digest, object_id), "refused, yet stands"
    event(f"crashes: {min(crashes, 3)}{'+' if crashes > 3 else ''}")
    event(f"answers lost: {min(lost, 3)}{'+' if lost > 3 else ''}")
    event(f"endpoint: {'in an item of its own' if long_endpoint else 'in the file item'}")
