"""What an operator runs: `sfb status` and `sfb redrive` against the same bucket and table the
Lambda uses, with the settings in the environment; and the handler's deadline."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from domain import FileId
from entrypoints.cli import main
from entrypoints.events import kinesis_event
from entrypoints.lambda_handler import handle
from entrypoints.provision import provision
from tests.e2e.support import SECRET, Stack, failures


def _environment(monkeypatch: pytest.MonkeyPatch, stack: Stack, **extra: str) -> None:
    for name, value in stack.settings("operator", **extra).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_a_complete_file_the_stream_gave_up_on_is_listed_and_finished_by_redrive(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str,
) -> None:
    extra = {"UPLOAD_MAX_ATTEMPTS": "1"}
    if backend == "dynamodb":
        extra |= {"STATE_BACKEND": "dynamodb", "STATE_TABLE": f"t-{stack.bucket}"}
    container = stack.container("lambda", **extra)
    if backend == "dynamodb":
        provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    source = stack.file(f"given-up-{backend}.bin", size=30_000, chunk_size=10_000)
    stack.receiver.fail_next(503, times=1)
    response = stack.invoke(container, stack.seq.records(source.payloads))
    assert len(failures(response)) == 1  # ...and Kinesis later gives up on that record
    file_id = str(FileId.for_endpoint(source.endpoint))
    _environment(monkeypatch, stack, **extra)

    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert file_id in listed
    assert "3/3" in listed
    assert SECRET not in listed

    assert main(["redrive", file_id]) == 0
    assert f"{file_id}: uploaded" in capsys.readouterr().out
    [put] = stack.uploads_of(source)
    assert put.body == source.data
    assert stack.keys("pending/") == []

    assert main(["status"]) == 0
    assert file_id not in capsys.readouterr().out


def test_every_failed_file_is_uploaded_again_by_redrive_all_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    container = stack.container("lambda")
    source = stack.file("refused.bin", size=25_000, chunk_size=10_000)
    stack.receiver.fail_next(403)
    assert failures(stack.invoke(container, stack.seq.records(source.payloads))) == []
    _environment(monkeypatch, stack)

    assert main(["status"]) == 0
    assert "failed" in capsys.readouterr().out

    assert main(["redrive", "--all-failed"]) == 0
    [put] = stack.uploads_of(source)
    assert put.body == source.data
    assert stack.keys("failed/") == []


def test_redrive_of_an_unknown_file_says_so_and_exits_non_zero(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _environment(monkeypatch, stack)

    assert main(["redrive", "0" * 32]) == 1
    assert "not found" in capsys.readouterr().out
    assert main(["redrive", "../../etc"]) == 2
    assert "not a file id" in capsys.readouterr().err


@dataclass
class ShortOnTime:
    """A Lambda context whose invocation has ``seconds`` left, less a second per question."""

    seconds: float
    aws_request_id: str = "deadline-test"

    def get_remaining_time_in_millis(self) -> int:
        self.seconds -= 1
        return int(self.seconds * 1000)


def test_near_its_deadline_the_handler_reports_the_rest_and_keeps_what_it_did(
    stack: Stack,
) -> None:
    container = stack.container("lambda", DEADLINE_MARGIN_SECONDS="10")
    source = stack.file("deadline.bin", size=60_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)

    response = handle(container, kinesis_event(records), ShortOnTime(seconds=11.5))

    assert failures(response) == [r["kinesis"]["sequenceNumber"] for r in records[2:]]
    assert len([k for k in stack.keys("pending/") if not k.endswith(".json")]) == 2

    assert failures(stack.invoke(stack.container("other"), records[2:])) == []
    [put] = stack.uploads_of(source)
    assert put.body == source.data
