"""The local backend's shard log on S3 (moto's server): the bench's layout in small costs one
PutObject an invocation (and a snapshot when a file finishes), no ListObjectsV2, and leaves
nothing under pending/."""

from __future__ import annotations

from collections import Counter

from tests.assertions import assert_uploaded_once
from tests.e2e.support import S3Requests, Stack, failures


def test_three_interleaved_files_over_two_alternating_containers_cost_a_put_an_invocation(
    stack: Stack,
) -> None:
    sources = [
        stack.file(f"interleaved-{n}.bin", size=80_000, chunk_size=10_000, seed=n) for n in range(3)
    ]
    stream = [source.payloads[p] for p in range(8) for source in sources]
    containers = [stack.container("a"), stack.container("b")]
    requests = [S3Requests(container) for container in containers]
    invocations = [stream[i : i + 4] for i in range(0, len(stream), 4)]

    for n, payloads in enumerate(invocations):
        assert failures(stack.invoke(containers[n % 2], stack.seq.records(payloads))) == []

    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    made = Counter(op for counted in requests for op in counted.operations)
    assert made["ListObjectsV2"] == 0
    assert made["PutObject"] <= len(invocations) + len(sources)  # entries, snapshots
    # An invocation reads the snapshot, probes, checks its entry's number, catches up once;
    # the last one reads the 12 chunks the other container wrote, one ranged GET each.
    assert made["GetObject"] <= 4 * len(invocations) + 12
