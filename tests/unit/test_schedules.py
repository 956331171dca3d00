"""Random schedules of a real stream against the local backend: nothing lost, nothing corrupt."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from hypothesis import event, example, given
from hypothesis import strategies as st

from application.ports import TransientUploadError
from application.records import StreamRecord
from domain import FileId
from tests.assertions import (
    assert_every_file_uploaded_whole,
    assert_uploaded_whole,
)
from tests.factories import file_records
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeContainer,
    FakeRedisChunks,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)
from tests.tools.shard_driver import drive_shard


def _stream(rng: random.Random, files: int) -> tuple[dict[str, bytes], list[StreamRecord]]:
    """Files of random sizes cut at random chunk sizes, a quarter re-sent, all shuffled."""
    contents = {
        f"https://example.com/f{i}?sig=s{i}": rng.randbytes(rng.randint(0, 3000))
        for i in range(files)
    }
    records: list[StreamRecord] = []
    for endpoint, content in contents.items():
        records += file_records(endpoint, content, rng.randint(100, 900))
    records += rng.sample(records, k=len(records) // 4)  # producer retries
    rng.shuffle(records)
    return contents, records


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=9),
    fault_rate=st.sampled_from([0.0, 0.15, 0.3]),
)
def test_every_file_is_uploaded_whole_under_shuffles_duplicates_recycles_and_faults(
    seed: int, files: int, batch_size: int, fault_rate: float
) -> None:
    rng = random.Random(seed)
    contents, records = _stream(rng, files)
    by_sequence = {r.sequence_number: r for r in records}
    events = [{"kinesis": {"sequenceNumber": r.sequence_number}} for r in records]

    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()
    containers = [FakeContainer(remote, uploader, archive) for _ in range(2)]

    def invoke(_: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
        pick = rng.randrange(len(containers))
        if rng.random() < 0.1:
            containers[pick] = containers[pick].recycled()
        remote.failing = rng.random() < fault_rate
        if rng.random() < fault_rate:
            uploader.fail_transiently(1)
        batch = [by_sequence[e["kinesis"]["sequenceNumber"]] for e in event["Records"]]
        failed = containers[pick].process(batch)
        remote.failing = False
        uploader.script.clear()
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    drive_shard(events, invoke, batch_size, max_invocations=5000)

    assert_every_file_uploaded_whole(contents, uploader, archive)
    if fault_rate == 0.0:  # with faults, a deletion that failed is the lifecycle rule's
        assert remote.pending() == []


REDIS_BUDGETS = st.sampled_from([None, 0, 2_000, 10**9])
"""None: the dynamodb backend; else the redis backend keeping up to this many bytes of chunks
in the server (0: all in S3; 2,000: some of each; 10**9: all in Redis)."""


class Crash(BaseException):
    """A Lambda timeout mid-upload: the invocation ends with no chance to react."""


def assert_uploaded_once_unless_killed_after(
    contents: Mapping[str, bytes],
    uploader: FakeUploader,
    archive: FakeArchive,
    killed_after: Counter[str],
) -> None:
    """Every file uploaded with its exact bytes, once, or once more for each invocation that
    uploaded it and was then killed: the one relaxation of the whole-file path, whose
    tombstones wait for the batch's end (a killed invocation writes none, and the
    redelivery finds the file unknown and uploads it again)."""
    assert archive.quarantined == []
    for endpoint, content in contents.items():
        uploads = uploader.bodies_for(endpoint)
        assert_uploaded_whole(uploads, content, to=endpoint)
        assert len(uploads) <= 1 + killed_after[endpoint], (
            f"{endpoint}: {len(uploads)} uploads, {killed_after[endpoint]} after a kill"
        )


def assert_chunk_objects_gone_unless_kept_by_a_file_that_took_nothing(
    remote: FakeRemoteStore, state: FakeStateStore, faults: bool
) -> None:
    """Every file finished: each chunk object the dynamodb backend wrote is deleted, unless
    its item still names a file that took nothing from it (a refused chunk, or a record left
    for redelivery, whose invocation died or found the state store down before letting the
    object go: the pending/ lifecycle rule's). Without faults, none is left at all."""
    for object_id in remote.batch_objects:
        files = state.object_items[object_id].files
        took = {f for f in files if f in state.items and object_id in state.items[f].where.values()}
        assert faults, f"chunk object {object_id} was left without a fault"
        assert took != files, f"chunk object {object_id} outlived its files"


def uploaded_since(uploader: FakeUploader, before: int) -> Counter[str]:
    return Counter(endpoint for endpoint, _ in uploader.uploads[before:])


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=4),
    shard_count=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=9),
    fault_rate=st.sampled_from([0.0, 0.15, 0.3]),
    redis_budget=REDIS_BUDGETS,
)
# Redis refused to count a file's chunks it had just stored; the file then went whole: its
# chunks stayed in Redis until their TTL (found by `make chaos`).
@example(seed=31146020, files=1, shard_count=1, batch_size=7, fault_rate=0.3, redis_budget=2000)
def test_shared_backend_uploads_every_file_once_across_interleaved_shards_and_faults(
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

    remote, state, uploader, archive = (
        FakeRemoteStore(),
        FakeStateStore(),
        FakeUploader(),
        FakeArchive(),
    )
    clock = FakeClock()
    chunks = None if redis_budget is None else FakeRedisChunks(state, remote, redis_budget)

    def container() -> SharedFakeContainer:
        return SharedFakeContainer(remote, state, uploader, archive, clock, redis_chunks=chunks)

    containers = [container() for _ in range(shard_count)]
    positions = [0] * shard_count
    killed_after: Counter[str] = Counter()
    whole: set[FileId] = set()  # files finished whole, with no chunk of theirs counted
    for _ in range(5000):
        open_shards = [i for i in range(shard_count) if positions[i] < len(shards[i])]
        if not open_shards:
            break
        shard = rng.choice(open_shards)
        clock.now += rng.uniform(0, containers[0].lease_seconds / 3)
        if rng.random() < 0.1:
            containers[shard] = container()
        remote.failing = rng.random() < fault_rate
        state.failing = rng.random() < fault_rate / 2
        if rng.random() < fault_rate:
            uploader.script.append(
                Crash() if rng.random() < 0.3 else TransientUploadError("HTTP 503")
            )
        batch = shards[shard][positions[shard] : positions[shard] + batch_size]
        before = len(uploader.uploads)
        try:
            failed = containers[shard].process(batch)
        except Crash:
            killed_after += uploaded_since(uploader, before)
            failed = [batch[0].sequence_number]
            containers[shard] = container()
        whole |= {t.file_id for t in containers[shard].batches.closed}
        remote.failing = state.failing = False
        uploader.script.clear()
        sequence = [r.sequence_number for r in batch]
        positions[shard] += min((sequence.index(s) for s in failed), default=len(batch))
    else:
        raise AssertionError("the shards never drained")

    event(f"a file went whole: {'yes' if whole else 'no'}")  # `make chaos` shows how often
    event(f"a file was uploaded, then its invocation killed: {'yes' if killed_after else 'no'}")
    assert_uploaded_once_unless_killed_after(contents, uploader, archive, killed_after)
    # A chunk S3 took while DynamoDB refused to count it is deleted when its file completes
    # through the shared state, not when a later batch holds the file whole: the pending/
    # lifecycle rule expires it (the whole-file path makes no request per file to find it).
    undeleted = set() if chunks is None else chunks.undeleted
    assert {file_id for file_id, _, _ in remote.objects} <= whole | undeleted
    assert chunks is None or chunks.held == {}
    assert_chunk_objects_gone_unless_kept_by_a_file_that_took_nothing(
        remote, state, faults=fault_rate > 0
    )
