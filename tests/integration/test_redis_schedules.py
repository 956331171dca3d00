"""Random schedules of the redis backend on a real redis-server: the scripts, not a model of
them, decide every race. The same stream as the unit schedules (shuffled, duplicated,
interleaved over shards, recycled containers, crashes mid-upload, transient failures, S3
refusing) with chunks kept in Redis, spilled to S3 (a fake, refusing at times) or both.

`make chaos` runs more of them; fewer than the unit schedules, as each example talks to the
server.
"""

from __future__ import annotations

import random
from collections import Counter

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.ports import TransientUploadError
from application.process_batch import ProcessBatch
from application.records import StreamRecord
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeLocalStore,
    FakeMetrics,
    FakePolicy,
    FakeRemoteStore,
    FakeUploader,
    FakeValidator,
    fake_container,
)
from tests.unit.test_schedules import (
    Crash,
    _stream,
    assert_uploaded_once_unless_killed_after,
    uploaded_since,
)


def redis_process(
    url: str,
    budget: int,
    remote: FakeRemoteStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
) -> ProcessBatch:
    """A new container of the redis backend: its own connection pool, the real scripts."""
    container = fake_container(
        {"STATE_BACKEND": "redis", "REDIS_URL": url, "REDIS_MAX_CHUNK_BYTES": str(budget)},
        validator=FakeValidator(),
        remote_store=remote,
        archive=archive,
        uploader=uploader,
        metrics=FakeMetrics(),
        policy=FakePolicy(),
        local_store=FakeLocalStore(),
        clock=clock,
    )
    return container.process_batch()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=4),
    shard_count=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=9),
    fault_rate=st.sampled_from([0.0, 0.15, 0.3]),
    budget=st.sampled_from([0, 2_000, 10**9]),
)
def test_on_a_real_server_every_file_is_uploaded_once_across_shards_and_faults(
    redis_url: str,
    seed: int,
    files: int,
    shard_count: int,
    batch_size: int,
    fault_rate: float,
    budget: int,
) -> None:
    server = redis.Redis.from_url(redis_url)
    server.flushdb()
    rng = random.Random(seed)
    contents, records = _stream(rng, files)
    shards: list[list[StreamRecord]] = [records[i::shard_count] for i in range(shard_count)]
    remote, uploader, archive, clock = FakeRemoteStore(), FakeUploader(), FakeArchive(), FakeClock()

    def container() -> ProcessBatch:
        return redis_process(redis_url, budget, remote, uploader, archive, clock)

    containers = [container() for _ in range(shard_count)]
    positions = [0] * shard_count
    killed_after: Counter[str] = Counter()
    for _ in range(5000):
        open_shards = [i for i in range(shard_count) if positions[i] < len(shards[i])]
        if not open_shards:
            break
        shard = rng.choice(open_shards)
        clock.now += rng.uniform(0, 300)
        if rng.random() < 0.1:
            containers[shard] = container()
        remote.failing = rng.random() < fault_rate
        if rng.random() < fault_rate:
            uploader.script.append(
                Crash() if rng.random() < 0.3 else TransientUploadError("HTTP 503")
            )
        batch = shards[shard][positions[shard] : positions[shard] + batch_size]
        before = len(uploader.uploads)
        try:
            failed = containers[shard](batch)
        except Crash:
            killed_after += uploaded_since(uploader, before)
            failed = [batch[0].sequence_number]
            containers[shard] = container()
        remote.failing = False
        uploader.script.clear()
        sequence = [r.sequence_number for r in batch]
        positions[shard] += min((sequence.index(s) for s in failed), default=len(batch))
    else:
        raise AssertionError("the shards never drained")

    assert_uploaded_once_unless_killed_after(contents, uploader, archive, killed_after)
    assert remote.objects == {}, "a finished file's spilled chunks were left in S3"
    assert list(server.scan_iter(match="sfb:{*}:c")) == [], "chunks were left in Redis"
    server.close()
