"""What an operator runs: `sfb status` and `sfb redrive` against the same bucket and table the
Lambda uses, with the settings in the environment; and the handler's deadline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from domain import FileId
from entrypoints.cli import main
from entrypoints.events import kinesis_event
from entrypoints.lambda_handler import handle
from entrypoints.provision import provision
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, SESSION_TOKEN, Stack, failures


def _environment(monkeypatch: pytest.MonkeyPatch, stack: Stack, **extra: str) -> None:
    for name, value in stack.settings("operator", **extra).items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize("token", ["", SESSION_TOKEN], ids=["short-endpoint", "session-token"])
@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_a_complete_file_the_stream_gave_up_on_is_listed_and_finished_by_redrive(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str,
    token: str,
) -> None:
    """A long endpoint (dynamodb: kept in an item of its own) is found by both commands."""
    extra = {"UPLOAD_MAX_ATTEMPTS": "1"}
    if backend == "dynamodb":
        extra |= {"STATE_BACKEND": "dynamodb", "STATE_TABLE": f"t-{stack.bucket}"}
    container = stack.container("lambda", **extra)
    if backend == "dynamodb":
        provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    source = stack.file(f"given-up-{backend}.bin", size=30_000, chunk_size=10_000, token=token)
    stack.receiver.fail_next(503, times=1)
    response = stack.invoke(container, stack.seq.records(source.payloads))
    assert len(failures(response)) == 1  # ...and Kinesis later gives up on that record
    file_id = str(FileId.for_endpoint(source.endpoint))
    _environment(monkeypatch, stack, **extra)

    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert file_id in listed
    assert "[##############] 3/3" in listed
    assert f"next: complete but never uploaded: sfb redrive {file_id}" in listed
    assert listed.splitlines()[-1] == "1 file not finished: 1 complete; 0 expire soon"
    assert source.endpoint.split("?")[0] in listed
    assert SECRET not in listed

    [row] = _status_json(capsys)
    assert row["file_id"] == file_id
    assert (row["state"], row["received"], row["partition_count"]) == ("complete", 3, 3)
    assert row["bytes"] == 30_000
    assert row["expires_in_seconds"] is None
    assert row["next_step"] == f"complete but never uploaded: sfb redrive {file_id}"

    assert main(["redrive", file_id]) == 0
    assert f"{file_id}: uploaded" in capsys.readouterr().out
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []

    assert main(["status"]) == 0
    assert file_id not in capsys.readouterr().out
    assert _status_json(capsys) == []


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_a_file_still_collecting_counts_down_to_its_expiry(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str,
) -> None:
    extra = {}
    if backend == "dynamodb":
        extra = {"STATE_BACKEND": "dynamodb", "STATE_TABLE": f"t-{stack.bucket}"}
    container = stack.container("lambda", **extra)
    if backend == "dynamodb":
        provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    source = stack.file(f"half-{backend}.bin", size=30_000, chunk_size=10_000)
    assert failures(stack.invoke(container, stack.seq.records(source.payloads[:2]))) == []
    file_id = str(FileId.for_endpoint(source.endpoint))
    _environment(monkeypatch, stack, **extra)

    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert "collecting" in listed
    assert "[#########-----] 2/3" in listed
    assert "next: waiting for 1 missing chunk" in listed
    assert SECRET not in listed
    [row] = _status_json(capsys)
    assert (row["file_id"], row["state"], row["received"]) == (file_id, "collecting", 2)
    assert 86_400 - 600 < row["expires_in_seconds"] <= 86_400
    assert row["expires_soon"] is False
    assert row["first_seen"].endswith("Z")
    assert row["endpoint"] in (None, source.endpoint.split("?")[0])

    monkeypatch.setenv("INCOMPLETE_FILE_TTL_SECONDS", "600")
    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert "(soon)" in listed
    assert "next: expires soon: given up by the first expiry run after " in listed
    assert listed.splitlines()[-1] == "1 file not finished: 1 collecting; 1 expires soon"
    [row] = _status_json(capsys)
    assert row["expires_soon"] is True
    assert 0 < row["expires_in_seconds"] <= 600


def test_status_fails_with_one_line_when_a_setting_is_wrong(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _environment(monkeypatch, stack, INCOMPLETE_FILE_TTL_SECONDS="soon")

    assert main(["status", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("sfb status: INCOMPLETE_FILE_TTL_SECONDS must be a number")
    assert err.count("\n") == 1


def test_every_failed_file_is_uploaded_again_by_redrive_all_failed(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    container = stack.container("lambda")
    source = stack.file("refused.bin", size=25_000, chunk_size=10_000)
    stack.receiver.fail_next(403)
    assert failures(stack.invoke(container, stack.seq.records(source.payloads))) == []
    _environment(monkeypatch, stack)

    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert "failed" in listed
    assert "(or sfb redrive --all-failed)" in listed

    [row] = _status_json(capsys)
    assert (row["state"], row["bytes"], row["expires_in_seconds"]) == ("failed", 25_000, None)
    assert "check the endpoint" in row["next_step"]

    assert main(["redrive", "--all-failed"]) == 0
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("failed/") == []


def _status_json(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """What `sfb status --json` printed: the whole of stdout is one JSON document."""
    assert main(["status", "--json"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    document: list[dict[str, Any]] = json.loads(out)
    return document


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
    assert len(stack.keys("pending/log/")) == 1  # one entry holds both chunks

    assert failures(stack.invoke(stack.container("other"), records[2:])) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
