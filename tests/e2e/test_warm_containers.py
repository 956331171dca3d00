"""Lambda hands consecutive batches of one shard to different warm containers."""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from typing import Any

from entrypoints.lambda_handler import handle
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LambdaContext, Record, Stack, failures, interleave
from tests.tools.shard_driver import drive_shard


def test_a_stale_warm_container_completes_a_file_another_container_advanced(
    stack: Stack,
) -> None:
    source = stack.file("alternation.bin", size=50_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    a, b = stack.container("a"), stack.container("b")

    responses = [
        stack.invoke(a, [r[0], r[1]]),
        stack.invoke(b, [r[2], r[3]]),
        stack.invoke(a, [r[4]]),
    ]

    assert [failures(response) for response in responses] == [[], [], []]
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_alternating_containers_with_shuffled_batches_and_duplicates_upload_the_file_once(
    stack: Stack,
) -> None:
    source = stack.file("alternation-shuffled.bin", size=48_000, chunk_size=10_000)
    p = source.payloads
    a, b = stack.container("a"), stack.container("b")

    responses = [
        stack.invoke(a, stack.seq.records([p[1], p[0], p[1]])),
        stack.invoke(b, stack.seq.records([p[3], p[2], p[3], p[2]])),
        stack.invoke(a, stack.seq.records([p[4], p[0], p[4]])),
    ]

    assert [failures(response) for response in responses] == [[], [], []]
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_a_container_that_joins_late_completes_a_file_from_chunks_it_never_saw(
    stack: Stack,
) -> None:
    source = stack.file("late-joiner.bin", size=40_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    a, b, c = stack.container("a"), stack.container("b"), stack.container("c")

    stack.invoke(a, [r[0]])
    stack.invoke(b, [r[1], r[2]])
    response = stack.invoke(c, [r[3]])

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_files_interleaved_on_a_shard_driven_over_two_containers_are_each_put_once(
    stack: Stack,
) -> None:
    rng = random.Random(7)
    sources = [
        stack.file("interleaved-1.bin", size=95_000, chunk_size=8_192),
        stack.file("interleaved-2.bin", size=33_333, chunk_size=4_096),
        stack.file("interleaved-3.bin", size=5_000, chunk_size=8_192),
        stack.file("interleaved-4.bin", size=0, chunk_size=8_192),
        stack.file("interleaved-5.bin", size=64_000, chunk_size=16_000),
    ]
    records: list[Record] = stack.seq.records(interleave(sources, rng, duplicates=0.15))
    containers = [stack.container("a"), stack.container("b")]

    def invoke(number: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
        return handle(containers[number % 2], event, LambdaContext())

    report = drive_shard(records, invoke, batch_size=6)

    assert report.redelivered == 0
    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data, to=source.endpoint)
    assert len(stack.receiver.received) == len(sources)


def test_a_late_duplicate_reaching_another_container_after_the_upload_does_not_upload_again(
    stack: Stack,
) -> None:
    source = stack.file("late-duplicate.bin", size=30_000, chunk_size=10_000)
    p = source.payloads
    a, b = stack.container("a"), stack.container("b")

    stack.invoke(a, stack.seq.records([p[0]]))
    stack.invoke(b, stack.seq.records([p[1], p[2]]))
    responses = [
        stack.invoke(a, stack.seq.records([p[2], p[1]])),
        stack.invoke(b, stack.seq.records([p[0]])),
    ]

    assert [failures(response) for response in responses] == [[], []]
    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_a_batch_redelivered_to_a_fresh_container_keeps_the_first_body_and_leaves_no_pending(
    stack: Stack,
) -> None:
    source = stack.file("redelivered.bin", size=20_000, chunk_size=10_000)
    other = source.payload(0, content=base64.b64encode(b"other bytes").decode("ascii"))
    a, b = stack.container("a"), stack.container("b")
    first = stack.seq.records([source.payloads[0]])
    second = stack.seq.records([source.payloads[1], other])

    responses = [stack.invoke(a, first), stack.invoke(a, second)]
    # The second batch comes again to a fresh container (a timeout, say), then a producer's
    # retry of a chunk reaches it after the upload.
    responses += [stack.invoke(b, second), stack.invoke(b, stack.seq.records([other]))]

    assert [failures(response) for response in responses] == [[], [], [], []]
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    [ledger] = stack.keys("shards/")
    assert SECRET not in stack.read(ledger).decode("utf-8")
