"""`sfb publish` onto a Kinesis stream on moto's server, then `sfb consume` through the
handler, one container per shard, as a platform team would try the service locally."""

from __future__ import annotations

import base64
import json
import random

import boto3
import pytest

from entrypoints.cli import main
from entrypoints.provision import provision
from entrypoints.streams import publish, shuffled_with_duplicates
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

    [put] = stack.uploads_of(source)
    assert put.body == source.data


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

    [put] = stack.uploads_of(source)
    assert put.body == source.data


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
