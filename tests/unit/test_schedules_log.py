"""Random schedules of the local backend's shard log under the overlaps it exists for: a
batch redelivered to the other container while the first invocation still runs (it ends
between the first one's read and its write), and containers that die between two requests
(after an entry is written, after a snapshot, after a deletion). Every upload carries each
partition's first bytes, every file is uploaded, and nothing stays under pending/ but what
a container that died between a snapshot and its deletion left to the lifecycle rule."""

from __future__ import annotations

import base64
import json
import random
from functools import partial

from attrs import define, evolve
from hypothesis import given
from hypothesis import strategies as st

from application.records import StreamRecord
from tests.assertions import assert_uploaded_whole
from tests.fakes import Crashed, FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader
from tests.unit.test_schedules_redelivery import _stream

CRASH_POINTS = ("write_entry", "write_snapshot", "delete")


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=3),
    batch_size=st.integers(min_value=1, max_value=8),
    overlap_rate=st.sampled_from([0.0, 0.3, 0.6]),
    crash_rate=st.sampled_from([0.0, 0.15]),
)
def test_overlapping_and_dying_invocations_upload_first_bytes_and_leave_nothing_pending(
    seed: int, files: int, batch_size: int, overlap_rate: float, crash_rate: float
) -> None:
    rng = random.Random(seed)
    expected, records = _stream(rng, files)
    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()
    lambdas = Deliveries(rng, remote, [FakeContainer(remote, uploader, archive) for _ in range(2)])

    position = 0
    for _ in range(10 * len(records) + 10):
        if position >= len(records):
            break
        position += lambdas.deliver(
            records[position : position + batch_size], crash_rate, overlap_rate
        )
    else:
        raise AssertionError("the shard never drained")

    for endpoint, body in expected.items():
        assert_uploaded_whole(uploader.bodies_for(endpoint), body, to=endpoint)
    if not lambdas.leaked_by_a_crash:
        assert remote.pending() == []
    assert remote.log_state().files == {}


@define
class Deliveries:
    """Batches handed to warm containers as Lambda does: to either, one sometimes recycled
    first; with ``crash_rate`` the container dies after a log operation; with
    ``overlap_rate`` the same batch, redelivered after a timeout, runs whole on the other
    container while this invocation is between its read of the log and its write."""

    rng: random.Random
    remote: FakeRemoteStore
    containers: list[FakeContainer]
    leaked_by_a_crash: bool = False
    """A container died between a snapshot and its deletion: entries left to the lifecycle."""

    def deliver(self, batch: list[StreamRecord], crash_rate: float, overlap_rate: float) -> int:
        """How many of the batch's records are done (those before the first reported)."""
        pick = self.rng.randrange(len(self.containers))
        if self.rng.random() < 0.2:
            self.containers[pick] = self.containers[pick].recycled()
        if self.rng.random() < overlap_rate:
            other = self.containers[1 - pick]
            self.remote.before_log_write = [partial(other.process, batch)]
        if self.rng.random() < crash_rate:
            self.remote.crash_after = self.rng.choice(CRASH_POINTS)
        crash_point = self.remote.crash_after
        try:
            failed = self.containers[pick].process(batch)
        except Crashed:
            failed = [batch[0].sequence_number]
            self.containers[pick] = self.containers[pick].recycled()
            self.leaked_by_a_crash |= crash_point == "write_snapshot"
        self.remote.before_log_write = []
        self.remote.crash_after = None
        return min(
            (i for i, r in enumerate(batch) if r.sequence_number in failed), default=len(batch)
        )


ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/files"


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=3),
    batch_size=st.integers(min_value=1, max_value=8),
    merge=st.booleans(),
    crash_rate=st.sampled_from([0.0, 0.15]),
)
def test_files_sent_across_a_split_or_merge_upload_first_bytes_and_leave_nothing_pending(
    seed: int, files: int, batch_size: int, merge: bool, crash_rate: float
) -> None:
    """Each file on one parent shard, then on one child from a random point of the stream
    on; parents drained before children (as Lambda reads them), shards interleaved, with
    recycled and dying containers."""
    rng = random.Random(seed)
    expected, records = _stream(rng, files)
    records = _interleaved(rng, records)
    parents, children = (("P1", "P2"), ("C",)) if merge else (("P",), ("C1", "C2"))
    before = {endpoint: rng.choice(parents) for endpoint in expected}
    after = {endpoint: rng.choice(children) for endpoint in expected}
    cut = rng.randrange(len(records) + 1)
    queues: dict[str, list[StreamRecord]] = {s: [] for s in (*parents, *children)}
    for index, made in enumerate(records):
        endpoint = _endpoint(made)
        shard = before[endpoint] if index < cut else after[endpoint]
        queues[shard].append(evolve(made, source=f"{shard}:{made.sequence_number}", stream=ARN))
    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()
    for child in children:
        remote.lineage.parents_of[child] = parents
    lambdas = Deliveries(rng, remote, [FakeContainer(remote, uploader, archive) for _ in range(2)])

    for generation in (parents, children):
        positions = dict.fromkeys(generation, 0)
        for _ in range(10 * len(records) + 10):
            open_shards = [s for s in generation if positions[s] < len(queues[s])]
            if not open_shards:
                break
            shard = rng.choice(open_shards)
            batch = queues[shard][positions[shard] : positions[shard] + batch_size]
            positions[shard] += lambdas.deliver(batch, crash_rate, overlap_rate=0.0)
        else:
            raise AssertionError("the shards never drained")

    for endpoint, body in expected.items():
        assert_uploaded_whole(uploader.bodies_for(endpoint), body, to=endpoint)
    if not lambdas.leaked_by_a_crash:
        assert remote.pending() == []
    for shard in (*parents, *children):
        assert remote.log_state(shard).files == {}


def _interleaved(rng: random.Random, records: list[StreamRecord]) -> list[StreamRecord]:
    """The files' records mixed, each file's in its own order (the first bytes stay first)."""
    by_file: dict[str, list[StreamRecord]] = {}
    for made in records:
        by_file.setdefault(_endpoint(made), []).append(made)
    order = [e for e, mine in by_file.items() for _ in mine]
    rng.shuffle(order)
    return [by_file[e].pop(0) for e in order]


def _endpoint(made: StreamRecord) -> str:
    return str(json.loads(base64.b64decode(made.data))["putEndpoint"])
