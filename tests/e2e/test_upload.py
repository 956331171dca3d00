"""A file goes in as Kinesis records and comes out as one PUT of exactly its bytes."""

from __future__ import annotations

import random

from tests.assertions import assert_uploaded_once
from tests.e2e.support import S3Requests, Stack, failures


def test_a_file_whose_chunks_all_arrive_in_one_batch_is_put_once_and_costs_only_the_shard_log(
    stack: Stack,
) -> None:
    source = stack.file("one-batch.bin", size=200_000, chunk_size=16_384)
    rng = random.Random(1)
    payloads = list(source.payloads) + rng.sample(source.payloads, k=5)
    rng.shuffle(payloads)
    container = stack.container("a")
    s3 = S3Requests(container)

    response = stack.invoke(container, stack.seq.records(payloads))

    assert response == {"batchItemFailures": []}
    put = assert_uploaded_once(stack.uploads_of(source), source.data)
    assert put.headers["content-length"] == str(len(source.data))
    assert "content-type" not in put.headers
    assert "transfer-encoding" not in put.headers
    assert stack.receiver.refused == []
    # The snapshot, the probe of the next entry, the snapshot noting the file: nothing per file.
    assert s3.operations == ["GetObject", "GetObject", "PutObject"]


def test_a_file_spread_over_several_batches_is_put_once_whole_and_leaves_nothing_pending(
    stack: Stack,
) -> None:
    source = stack.file("several-batches.bin", size=150_001, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    container = stack.container("a")

    responses = [stack.invoke(container, records[i : i + 4]) for i in range(0, len(records), 4)]

    assert [failures(r) for r in responses] == [[]] * len(responses)
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_chunks_waiting_between_batches_are_kept_in_s3_until_the_file_completes(
    stack: Stack,
) -> None:
    source = stack.file("waiting.bin", size=30_000, chunk_size=10_000)
    first, second, third = stack.seq.records(source.payloads)
    container = stack.container("a")
    s3 = S3Requests(container)

    stack.invoke(container, [first, second])

    # The snapshot, the probe, ONE entry (both chunks and the endpoint), the snapshot again.
    assert s3.operations == ["GetObject", "GetObject", "PutObject", "GetObject"]
    assert len(stack.keys("pending/")) == 1
    assert stack.uploads_of(source) == []

    stack.invoke(container, [third])

    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_an_empty_file_is_put_with_content_length_zero(stack: Stack) -> None:
    source = stack.file("empty.bin", size=0, chunk_size=1024)
    container = stack.container("a")

    response = stack.invoke(container, stack.seq.records(source.payloads))

    assert failures(response) == []
    put = assert_uploaded_once(stack.uploads_of(source), source.data)
    assert put.headers["content-length"] == "0"


def test_a_file_of_large_chunks_read_back_from_s3_is_put_whole(stack: Stack) -> None:
    source = stack.file("large-chunks.bin", size=3 * 1024 * 1024 + 77, chunk_size=700 * 1024)
    records = stack.seq.records(source.payloads)
    a, b = stack.container("a"), stack.container("b")

    stack.invoke(a, records[:3])
    response = stack.invoke(b, records[3:])

    assert failures(response) == []
    put = assert_uploaded_once(stack.uploads_of(source), source.data)
    assert put.headers["content-length"] == str(len(source.data))
