"""A full TMP_DIR: files larger than the local disk still arrive whole, and no batch fails.

Each container gets a small filesystem of its own: a tmpfs mounted for the test when the
machine allows it (root, a working ``mount``); otherwise a plain directory with a small
LOCAL_DISK_BUDGET_BYTES, which proves the budget but cannot make the disk itself run out.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from entrypoints.lambda_handler import handle
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LambdaContext, LogLines, Stack, interleave
from tests.tools.shard_driver import drive_shard

FILESYSTEM_BYTES = 2 * 1024 * 1024
FILE_BYTES = 3 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
RECORDS_PER_BATCH = 4


@contextmanager
def small_filesystem(path: Path, size: int) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` bytes at ``path``; yield whether the machine allowed it."""
    path.mkdir(parents=True)
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        yield False
        return
    options = f"size={size},mode=0700"
    done = subprocess.run(  # fixed arguments, a path this test made
        [mount, "-t", "tmpfs", "-o", options, "sfb-test", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run([umount, "-l", str(path)], capture_output=True, check=False)


def bytes_on_disk(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    "budget",
    [
        pytest.param(None, id="default-budget-half-of-the-free-space"),
        pytest.param(64 * 1024 * 1024, id="budget-beyond-the-disk-so-writes-meet-ENOSPC"),
    ],
)
def test_files_larger_than_the_local_disk_arrive_whole_over_alternating_containers(
    stack: Stack, logs: LogLines, budget: int | None
) -> None:
    with ExitStack() as mounts:
        disks = [stack.root / name for name in ("a", "b")]
        mounted = all([mounts.enter_context(small_filesystem(d, FILESYSTEM_BYTES)) for d in disks])
        if not mounted and budget is not None:
            pytest.skip("no tmpfs here (needs root and mount): a real disk cannot be filled")
        # Without a small filesystem, the budget itself is made small.
        extra = {} if mounted else {"LOCAL_DISK_BUDGET_BYTES": str(FILESYSTEM_BYTES // 2)}
        if budget is not None:
            extra["LOCAL_DISK_BUDGET_BYTES"] = str(budget)
        containers = [stack.container(d.name, TMP_DIR=str(d), **extra) for d in disks]
        limit = min(budget or FILESYSTEM_BYTES // 2, FILESYSTEM_BYTES)
        sources = [
            stack.file(f"larger-than-tmp-{n}.bin", FILE_BYTES, CHUNK_BYTES, seed=n) for n in (1, 2)
        ]
        assert all(len(s.data) > limit for s in sources)
        records = stack.seq.records(interleave(sources, random.Random(3), duplicates=0.05))
        failed_batches: list[int] = []
        peaks = [0, 0]

        def invoke(number: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
            turn = number % 2
            try:
                response = handle(containers[turn], event, LambdaContext())
            except Exception:
                # A function error: Lambda retries the whole batch.
                failed_batches.append(number)
                return {
                    "batchItemFailures": [
                        {"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in event["Records"]
                    ]
                }
            if response["batchItemFailures"]:
                failed_batches.append(number)
            peaks[turn] = max(peaks[turn], bytes_on_disk(disks[turn]))
            return response

        batches = -(-len(records) // RECORDS_PER_BATCH)
        report = drive_shard(records, invoke, RECORDS_PER_BATCH, max_invocations=batches * 3)

    assert failed_batches == []
    assert report.redelivered == 0
    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data, to=source.endpoint)
    assert stack.keys("pending/") == []
    assert max(peaks) <= limit
    assert SECRET not in logs.text
    # Only a budget beyond the disk meets a full disk; the default never lets it fill.
    full = logs.lines_with("TMP_DIR is fuller than the local disk budget")
    assert bool(full) == (budget is not None), full
