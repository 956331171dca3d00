"""Random schedules of the local backend on a small local disk that fails now and then.

The schedules of test_schedules.py (shuffles, producer retries, batch sizes, recycled
containers, S3 outages, upload failures), on a disk whose budget holds a few chunks at most
and that refuses writes (full, I/O error, read-only, no permission) or fails to read a chunk
back. Nothing is lost, nothing is uploaded wrong, no cache entry claims bytes the store does
not hold, and the disk is never used past its budget. `make chaos` profile: "chaos".
"""

from __future__ import annotations

import errno
import random
from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.assertions import assert_every_file_uploaded_whole
from tests.fakes import FakeArchive, FakeContainer, FakeLocalStore, FakeRemoteStore, FakeUploader
from tests.tools.shard_driver import drive_shard
from tests.unit.test_process_batch import local_sets_are_truthful
from tests.unit.test_schedules import _stream

DISK_ERRORS = (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EACCES, errno.EDQUOT)


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=9),
    fault_rate=st.sampled_from([0.0, 0.15, 0.3]),
    budget=st.sampled_from([0, 700, 2500]),
)
def test_every_file_is_uploaded_whole_on_a_small_failing_disk_under_the_local_faults(
    seed: int, files: int, batch_size: int, fault_rate: float, budget: int
) -> None:
    rng = random.Random(seed)
    contents, records = _stream(rng, files)
    by_sequence = {r.sequence_number: r for r in records}
    events = [{"kinesis": {"sequenceNumber": r.sequence_number}} for r in records]

    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()

    def container() -> FakeContainer:
        return FakeContainer(remote, uploader, archive, local=FakeLocalStore(budget))

    containers = [container() for _ in range(2)]
    retired: list[FakeContainer] = []

    def invoke(_: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
        pick = rng.randrange(len(containers))
        if rng.random() < 0.1:
            retired.append(containers[pick])
            containers[pick] = container()
        chosen = containers[pick]
        remote.failing = rng.random() < fault_rate
        if rng.random() < fault_rate:
            uploader.fail_transiently(1)
        if rng.random() < fault_rate * 2:
            chosen.local.write_error = rng.choice(DISK_ERRORS)
        on_disk = sorted(chosen.local.on_disk(), key=repr)
        if on_disk and rng.random() < fault_rate:
            chosen.local.unreadable.add(rng.choice(on_disk))
        batch = [by_sequence[e["kinesis"]["sequenceNumber"]] for e in event["Records"]]
        failed = chosen.process(batch)
        remote.failing = False
        uploader.script.clear()
        chosen.local.write_error = None
        chosen.local.unreadable.clear()  # a disk's read errors pass; its full state may not
        assert local_sets_are_truthful(chosen)
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    drive_shard(events, invoke, batch_size, max_invocations=5000)

    assert_every_file_uploaded_whole(contents, uploader, archive)
    for used in containers + retired:
        assert used.local.peak_usage <= budget
