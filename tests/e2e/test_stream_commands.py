"""`sfb publish` onto a Kinesis stream on moto's server, then `sfb consume` through the
handler, one container per shard, as a platform team would try the service locally."""

from __future__ import annotations

import base64
import json
import random

import boto3
import pytest

from entrypoints.cli import main
from entrypoints.events import encode_payload, split_payloads
from entrypoints.provision import provision
from entrypoints.streams import (
    MAX_RECORD_BYTES,
    RecordTooLarge,
    check_chunk_size,
    largest_fitting_chunk_size,
    publish,
    record_bytes,
    shuffled_with_duplicates,
)
from tests.assertions import assert_uploaded_once
from tests.e2e.support import Stack


def _stream(name: str, shards: int) -> None:
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)


def test_a_file_published_with_sfb_is_assembled_by_sfb_consume(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = stack.file("published.bin", size=70_000, chunk_size=10_000)
    path = stack.root / "published.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(source.data)
    stream = f"s-{stack.bucket}"
    _stream(stream, shards=2)
    for name, value in stack.settings("consumer").items():
        monkeypatch.setenv(name, value)

    assert (
        main(
            [
                "publish",
                str(path),
                "--stream",
                stream,
                "--put-endpoint",
                source.endpoint,
                "--chunk-size",
                "10000",
            ]
        )
        == 0
    )
    assert "7 records put" in capsys.readouterr().out
    assert main(["consume", "--stream", stream, "--batch-size", "3"]) == 0

    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_chunks_spread_over_four_shards_with_duplicates_are_assembled_once_by_the_shared_backend(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = stack.file("spread.bin", size=90_000, chunk_size=10_000)
    stream = f"s4-{stack.bucket}"
    _stream(stream, shards=4)
    extra = {"STATE_BACKEND": "dynamodb", "STATE_TABLE": f"t-{stack.bucket}"}
    for name, value in stack.settings("consumer", **extra).items():
        monkeypatch.setenv(name, value)
    container = stack.container("provisioner", **extra)
    provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    payloads = shuffled_with_duplicates(source.payloads, random.Random(4))
    publish(boto3.client("kinesis"), stream, payloads, spread=True, sleep=lambda _: None)

    assert main(["consume", "--stream", stream, "--batch-size", "2"]) == 0

    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_publishing_a_missing_file_is_one_clear_line_and_a_non_zero_exit(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", "/nonexistent/file", "--stream", "s", "--put-endpoint", "x"]) == 2
    assert capsys.readouterr().err.startswith("sfb publish: ")


@pytest.mark.parametrize(
    "command", ["demo", "split", "publish", "consume", "provision", "status", "redrive"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "usage: sfb" in capsys.readouterr().out


def test_sfb_split_prints_one_payload_per_chunk_that_reassembles_the_file(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stack.root / "split.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.Random(5).randbytes(2_500)
    path.write_bytes(data)

    assert (
        main(["split", str(path), "--put-endpoint", "https://e.example/f", "--chunk-size", "1000"])
        == 0
    )

    payloads = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(p["partition"], p["partitionCount"]) for p in payloads] == [(0, 3), (1, 3), (2, 3)]
    assert b"".join(base64.b64decode(p["content"]) for p in payloads) == data


PRESIGNED = (
    "https://bucket.s3.eu-west-1.amazonaws.com/exports/2024/05/01/report.csv"
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLE%2F20240501%2Feu-west-1"
    "%2Fs3%2Faws4_request&X-Amz-Date=20240501T120000Z&X-Amz-Expires=3600"
    f"&X-Amz-Security-Token={'T' * 1400}&X-Amz-SignedHeaders=host&X-Amz-Signature={'f' * 64}"
)
ENDPOINTS = {
    "short": "https://e.example/f",
    "presigned with a session token": PRESIGNED,
    "non-ASCII, escaped in the JSON": "https://bücher.example/ää/" + "é" * 300,
}


def largest_record(data: bytes, endpoint: str, chunk_size: int, spread: bool) -> int:
    """The largest record the producer really makes, measured on every payload."""
    return max(record_bytes(p, spread) for p in split_payloads(data, endpoint, chunk_size))


@pytest.mark.parametrize("spread", [False, True], ids=["one key", "spread"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS.values()), ids=list(ENDPOINTS))
def test_the_largest_fitting_chunk_size_fits_and_one_byte_more_does_not(
    endpoint: str, spread: bool
) -> None:
    data = bytes(3_500_000)

    fitting = largest_fitting_chunk_size(len(data), endpoint, MAX_RECORD_BYTES, spread)

    assert largest_record(data, endpoint, fitting, spread) <= MAX_RECORD_BYTES
    assert all(
        largest_record(data, endpoint, size, spread) > MAX_RECORD_BYTES
        for size in range(fitting + 1, fitting + 16)
    )
    check_chunk_size(len(data), endpoint, fitting, spread)
    with pytest.raises(RecordTooLarge, match=f"the largest chunk size that fits .* is {fitting}"):
        check_chunk_size(len(data), endpoint, fitting + 1, spread)


def test_the_record_size_counts_the_payload_json_and_the_partition_key() -> None:
    [payload] = split_payloads(b"hello", PRESIGNED, 10)

    assert record_bytes(payload) == len(encode_payload(payload)) + 32
    assert record_bytes(payload, spread=True) == len(encode_payload(payload)) + 34


def _records_on(name: str) -> list[dict[str, object]]:
    kinesis = boto3.client("kinesis")
    [shard] = kinesis.list_shards(StreamName=name)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return [dict(r) for r in kinesis.get_records(ShardIterator=iterator)["Records"]]


def test_sfb_publish_refuses_a_chunk_size_over_the_record_limit_before_sending_anything(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stack.root / "big.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(random.Random(6).randbytes(2_000_000))
    stream = f"s1-{stack.bucket}"
    _stream(stream, shards=1)
    fitting = largest_fitting_chunk_size(2_000_000, PRESIGNED, MAX_RECORD_BYTES, False)

    command = ["publish", str(path), "--stream", stream, "--put-endpoint", PRESIGNED]
    refused = main([*command, "--chunk-size", str(fitting + 1)])
    err = capsys.readouterr().err
    accepted = main([*command, "--chunk-size", str(fitting)])

    assert refused == 2
    assert err.startswith("sfb publish: chunk size ")
    assert f"the largest chunk size that fits with this endpoint is {fitting}" in err
    assert "X-Amz-Signature" not in err
    assert "bucket.s3" not in err
    assert accepted == 0  # moto refuses a record over 1 MiB: this one is at most that
    assert len(_records_on(stream)) == 3  # the accepted run's records only


def test_sfb_publish_refuses_an_endpoint_the_service_would_quarantine(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    path = stack.root / "small.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")

    code = main(
        ["publish", str(path), "--stream", "s", "--put-endpoint", "https://h:99999/f?sig=SECRET"]
    )

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("sfb publish: --put-endpoint: ")
    assert "SECRET" not in err


def test_publish_refuses_an_oversized_record_before_sending_anything(stack: Stack) -> None:
    [payload] = split_payloads(bytes(800_000), "https://e.example/f", 800_000)

    with pytest.raises(RecordTooLarge, match="nothing was sent"):
        publish(boto3.client("kinesis"), "no-such-stream", [payload], sleep=lambda _: None)
