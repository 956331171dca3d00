"""Random schedules of a real stream against the local backend: nothing lost, nothing corrupt."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application.records import StreamRecord
from entrypoints.shard_driver import drive_shard
from tests.factories import file_records
from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
    contents = {
        f"https://example.com/f{i}?sig=s{i}": rng.randbytes(rng.randint(0, 3000))
        for i in range(files)
    }
    records: list[StreamRecord] = []
    for endpoint, content in contents.items():
        records += file_records(endpoint, content, rng.randint(100, 900))
    records += rng.sample(records, k=len(records) // 4)  # producer retries
    rng.shuffle(records)
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

    assert archive.quarantined == []
    for endpoint, content in contents.items():
        bodies = uploader.bodies_for(endpoint)
        assert bodies, f"{endpoint} was never uploaded"
        assert all(body == content for body in bodies)
