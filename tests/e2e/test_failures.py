"""S3 or the putEndpoint failing: Kinesis redelivers what is not durable, nothing is lost."""

from __future__ import annotations

import hashlib

import pytest

from domain import FileId
from tests.assertions import assert_uploaded_once
from tests.e2e.support import (
    SECRET,
    LogLines,
    Stack,
    closed_port,
    failures,
    sequence_numbers,
)


def test_while_s3_is_unreachable_every_record_is_reported_and_then_finished_on_redelivery(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, logs: LogLines
) -> None:
    done = stack.file("done-in-batch.bin", size=20_000, chunk_size=10_000)
    waiting = stack.file("waiting-on-s3.bin", size=30_000, chunk_size=10_000)
    later = stack.file("after-the-failure.bin", size=20_000, chunk_size=10_000)
    stack.invoke(stack.container("before"), stack.seq.records([waiting.payload(0)]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cut_off = stack.container("cut-off")
    cut_off.s3_client()  # boto3 reads the environment when the client is made
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.aws_endpoint)
    batch = stack.seq.records(
        [done.payload(0), done.payload(1), waiting.payload(1), later.payload(0)]
    )

    response = stack.invoke(cut_off, batch)

    # Without the shard ledger no file can be told finished or not: nothing is taken, even
    # a file that completes inside the batch.
    assert failures(response) == sequence_numbers(batch)
    assert stack.uploads_of(done) == stack.uploads_of(waiting) == stack.uploads_of(later) == []
    for source in (done, waiting, later):
        assert logs.lines_with('"ERROR"', str(FileId.for_endpoint(source.endpoint)))

    redelivery = [*batch, *stack.seq.records([waiting.payload(2), later.payload(1)])]
    response = stack.invoke(stack.container("healthy"), redelivery)

    assert failures(response) == []
    for source in (done, waiting, later):
        assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_a_warm_container_whose_bucket_failed_it_completes_the_file_once_s3_answers_again(
    stack: Stack,
) -> None:
    source = stack.file("bucket-back.bin", size=30_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    stack.s3.delete_bucket(Bucket=stack.bucket)
    container = stack.container("a")

    response = stack.invoke(container, records[:2])

    assert failures(response) == sequence_numbers(records[:2])

    stack.s3.create_bucket(Bucket=stack.bucket)
    response = stack.invoke(container, records)

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_an_upload_failing_past_its_retries_is_kept_and_its_last_record_reported(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("retry-later.bin", size=30_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    container = stack.container("a", UPLOAD_MAX_ATTEMPTS="2")
    stack.receiver.fail_next(503, times=2)

    response = stack.invoke(container, records)

    assert failures(response) == sequence_numbers(records[-1:])
    assert stack.uploads_of(source) == []
    assert len(stack.keys("pending/")) == 1  # one log entry: every chunk and the endpoint
    [warning] = logs.at("WARNING")
    assert "503" in warning["reason"]
    assert warning["file_id"] == str(FileId.for_endpoint(source.endpoint))


@pytest.mark.parametrize("redelivered_to", ["the same container", "another container"])
def test_an_upload_that_failed_transiently_is_put_once_when_its_record_is_redelivered(
    stack: Stack, redelivered_to: str
) -> None:
    source = stack.file("retried.bin", size=30_000, chunk_size=10_000)
    records = stack.seq.records([*source.payloads, source.payload(0)])
    first = stack.container("a", UPLOAD_MAX_ATTEMPTS="2")
    stack.receiver.fail_next(503, times=2)
    response = stack.invoke(first, records)
    reported = failures(response)
    assert reported == sequence_numbers(records[-1:])
    second = first if redelivered_to == "the same container" else stack.container("b")

    response = stack.invoke(second, records[-len(reported) :])

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_an_upload_failing_at_batch_end_in_a_stale_container_is_put_by_the_next_one(
    stack: Stack,
) -> None:
    source = stack.file("stale-and-failing.bin", size=50_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    a = stack.container("a", UPLOAD_MAX_ATTEMPTS="1")
    b = stack.container("b", UPLOAD_MAX_ATTEMPTS="1")
    stack.invoke(a, r[0:2])
    stack.invoke(b, r[2:4])
    stack.receiver.fail_next(503)

    response = stack.invoke(a, r[4:5])

    assert failures(response) == sequence_numbers(r[4:5])
    assert stack.uploads_of(source) == []

    response = stack.invoke(b, r[4:5])

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


@pytest.mark.parametrize("status", [404, 403, 302])
def test_an_upload_refused_for_good_is_kept_under_failed_and_the_shard_moves_on(
    stack: Stack, logs: LogLines, status: int
) -> None:
    source = stack.file("refused.bin", size=35_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    a, b = stack.container("a"), stack.container("b")
    stack.invoke(a, records[:2])
    stack.receiver.fail_next(status)

    response = stack.invoke(b, records[2:])

    assert response == {"batchItemFailures": []}
    assert stack.uploads_of(source) == []
    key = f"failed/{FileId.for_endpoint(source.endpoint)}"
    assert stack.keys("failed/") == [key, f"{key}.json"]  # the file and its endpoint note
    assert SECRET not in str(stack.metadata(key))
    [error] = logs.at("ERROR")
    assert error["kept_as"] == key
    assert str(status) in error["reason"]
    assert stack.keys("pending/") == []

    response = stack.invoke(b, stack.seq.records([source.payload(3)]))

    assert failures(response) == []
    assert stack.uploads_of(source) == []


def test_a_single_chunk_file_refused_for_good_is_kept_byte_for_byte(stack: Stack) -> None:
    source = stack.file("refused-small.bin", size=7_000, chunk_size=10_000)
    stack.receiver.fail_next(404)

    stack.invoke(stack.container("a"), stack.seq.records(source.payloads))

    assert stack.read(f"failed/{FileId.for_endpoint(source.endpoint)}") == source.data


@pytest.mark.parametrize("batches", [1, 2])
def test_a_multi_chunk_file_refused_for_good_is_kept_byte_for_byte(
    stack: Stack, batches: int
) -> None:
    source = stack.file("refused-large.bin", size=35_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    container = stack.container("a")
    if batches == 2:
        stack.invoke(container, records[:2])
        records = records[2:]
    stack.receiver.fail_next(404)

    stack.invoke(container, records)

    kept = stack.read(f"failed/{FileId.for_endpoint(source.endpoint)}")
    assert (len(kept), kept) == (len(source.data), source.data)


def test_a_file_above_boto3s_multipart_threshold_refused_for_good_is_kept_whole(
    stack: Stack,
) -> None:
    source = stack.file("refused-huge.bin", size=9 * 1024 * 1024 + 123, chunk_size=512 * 1024)
    records = stack.seq.records(source.payloads)
    container = stack.container("a")
    stack.invoke(container, records[:7])
    stack.receiver.fail_next(404)

    response = stack.invoke(container, records[7:])

    assert failures(response) == []
    kept = stack.read(f"failed/{FileId.for_endpoint(source.endpoint)}")
    assert hashlib.sha256(kept).hexdigest() == source.sha256
