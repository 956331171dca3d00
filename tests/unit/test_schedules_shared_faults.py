"""Random schedules of the dynamodb backend with faults after the claim: S3 reads failing
mid-upload, stored chunks changed, disk copies gone bad, finish answers lost, invocations
killed mid-upload.

Each file must be uploaded exactly once with its own bytes (once more for each invocation
killed after uploading it whole, before its tombstone), and no claim may outlive the failure
that ended its upload (only a killed invocation leaves one, for its lease).
"""

from __future__ import annotations

import random
from collections import Counter
from functools import partial

from hypothesis import event, given
from hypothesis import strategies as st

from application.ports import Body
from application.records import StreamRecord
from domain import FileStatus
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeRedisChunks,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)
from tests.unit.test_schedules import (
    REDIS_BUDGETS,
    Crash,
    _stream,
    assert_chunk_objects_gone_unless_kept_by_a_file_that_took_nothing,
    assert_uploaded_once_unless_killed_after,
    uploaded_since,
)


class KilledMidUpload(FakeUploader):
    """When ``armed``, the invocation is killed once part of the body has gone out."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def upload(self, put_endpoint: str, body: Body) -> None:
        if self.armed:
            self.armed = False
            body.open().read(100)
            raise Crash()
        super().upload(put_endpoint, body)


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=4),
    shard_count=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=9),
    fault_rate=st.sampled_from([0.15, 0.3, 0.5]),
    redis_budget=REDIS_BUDGETS,
)
def test_every_file_is_uploaded_once_and_no_claim_outlives_a_failure_after_it(
    seed: int,
    files: int,
    shard_count: int,
    batch_size: int,
    fault_rate: float,
    redis_budget: int | None,
) -> None:
    rng = random.Random(seed)
    contents, records = _stream(rng, files)
    shards: list[list[StreamRecord]] = [records[i::shard_count] for i in range(shard_count)]

    remote, state, archive = FakeRemoteStore(), FakeStateStore(), FakeArchive()
    uploader = KilledMidUpload()
    clock = FakeClock()
    chunks = None if redis_budget is None else FakeRedisChunks(state, remote, redis_budget)

    def container() -> SharedFakeContainer:
        return SharedFakeContainer(remote, state, uploader, archive, clock, redis_chunks=chunks)

    containers = [container() for _ in range(shard_count)]
    killed: set[str] = set()
    seen = dict.fromkeys(
        (
            "an S3 read broke mid-upload",
            "a finish answer was lost",
            "an invocation was killed mid-upload",
            "a disk copy went bad",
        ),
        False,
    )
    positions = [0] * shard_count
    killed_after: Counter[str] = Counter()
    went_whole = False
    for _ in range(5000):
        open_shards = [i for i in range(shard_count) if positions[i] < len(shards[i])]
        if not open_shards:
            break
        shard = rng.choice(open_shards)
        clock.now += rng.uniform(0, 120)
        left = rng.uniform(15, 900)  # what Lambda's context says the invocation has left

        broke = rng.random() < fault_rate
        remote.broken_reads = int(broke)
        for operation in ("open", "get"):  # reading a chunk; listing them after the claim
            if rng.random() < fault_rate / 3:
                remote.failing_operations.add(operation)
        if rng.random() < fault_rate / 3:  # reading chunk objects' items after the claim
            state.failing_operations.add("object items")
        changed = {}
        if remote.objects and rng.random() < fault_rate / 3:
            stored = rng.choice(list(remote.objects.values()))
            changed[id(stored)] = (stored, stored.content)
            stored.content = bytes(b ^ 0x55 for b in stored.content)
        batch_objects = dict(remote.batch_objects)
        if batch_objects and rng.random() < fault_rate / 3:
            remote.corrupt_batch_objects()
        copies = containers[shard].copies  # dynamodb: its disk copies of what it stored
        if copies.files and rng.random() < fault_rate / 3:  # one goes bad for good
            key = rng.choice(list(copies.files))
            if rng.random() < 0.5:
                copies.files[key] = b"not the chunk"
            else:
                copies.unreadable.add(key)
            seen["a disk copy went bad"] = True
        lost = rng.random() < fault_rate
        state.lost_finish_answers = int(lost)
        uploader.armed = rng.random() < fault_rate / 2

        batch = shards[shard][positions[shard] : positions[shard] + batch_size]
        owner = containers[shard].owner
        before = len(uploader.uploads)
        try:
            failed = containers[shard].process(batch, partial(float, left))
        except Crash:
            killed_after += uploaded_since(uploader, before)
            killed.add(owner)
            failed = [batch[0].sequence_number]
            containers[shard] = container()
        went_whole |= bool(containers[shard].batches.closed)
        held = {i.claim_owner for i in state.items.values() if i.status is FileStatus.ASSEMBLING}
        assert held <= killed, "a claim outlived the failure that ended its upload"
        seen["an S3 read broke mid-upload"] |= broke and not remote.broken_reads
        seen["a finish answer was lost"] |= lost and not state.lost_finish_answers
        seen["an invocation was killed mid-upload"] |= owner in killed

        remote.broken_reads = 0
        remote.failing_operations.clear()
        state.failing_operations.clear()
        for stored, content in changed.values():
            stored.content = content
        for object_id, data in batch_objects.items():
            if object_id in remote.batch_objects:
                remote.batch_objects[object_id] = data
        state.lost_finish_answers = 0
        uploader.armed = False
        sequence = [r.sequence_number for r in batch]
        positions[shard] += min((sequence.index(s) for s in failed), default=len(batch))
    else:
        raise AssertionError("the shards never drained")

    seen["a file went whole"] = went_whole
    seen["a file was uploaded, then its invocation killed"] = bool(killed_after)
    for fault, happened in seen.items():
        event(f"{fault}: {'yes' if happened else 'no'}")  # `make chaos` shows how often
    assert_uploaded_once_unless_killed_after(contents, uploader, archive, killed_after)
    assert remote.objects == {}, "a finished file's chunks were left behind"
    assert_chunk_objects_gone_unless_kept_by_a_file_that_took_nothing(remote, state, faults=True)
    assert chunks is None or chunks.held == {}, "a finished file's chunks were left in Redis"
