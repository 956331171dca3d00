"""Files that never complete, on moto's server: the scheduled ``expire`` handler gives them up
INCOMPLETE_FILE_TTL_SECONDS after their first chunk, on both backends; what a late chunk
does afterwards; and ``sfb expire`` by hand."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from dependency_injector import providers

from domain import FileId
from entrypoints import cli, lambda_handler
from entrypoints.container import Container, build_container
from entrypoints.provision import provision
from tests.e2e.support import (
    SECRET,
    SESSION_TOKEN,
    LambdaContext,
    LogLines,
    SourceFile,
    Stack,
    failures,
)
from tests.e2e.test_metrics import emf_documents

TTL = 86_400.0
SCHEDULED_EVENT = {
    "version": "0",
    "id": "d2a9d2b6-5b8e-4c1e-8f3e-1d1c2f0a9e11",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/sfb-expire"],
    "detail": {},
}


def backend_settings(stack: Stack, backend: str) -> dict[str, str]:
    if backend == "local":
        return {}
    return {"STATE_BACKEND": "dynamodb", "STATE_TABLE": f"t-{stack.bucket}"}


def later(seconds: float) -> Callable[[], float]:
    """A test clock ``seconds`` ahead of the real one, which dates S3 objects and items."""
    return lambda: time.time() + seconds


def expiry_container(stack: Stack, extra: dict[str, str], clock: Callable[[], float]) -> Container:
    container = build_container(stack.settings("expiry", **extra))
    container.clock.override(providers.Object(clock))
    return container


def started_file(
    stack: Stack, backend: str, name: str, token: str = "", **more: str
) -> tuple[Container, SourceFile, str]:
    """A container of the stream's Lambda that took two of a file's three chunks."""
    extra = backend_settings(stack, backend)
    container = stack.container("lambda", **extra, **more)
    if backend == "dynamodb":
        provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    source = stack.file(name, size=30_000, chunk_size=10_000, token=token)
    assert failures(stack.invoke(container, stack.seq.records(source.payloads[:2]))) == []
    # One log entry (local), one chunk object (dynamodb): the batch's both chunks in one.
    assert len([k for k in stack.keys("pending/") if not k.endswith(".json")]) == 1
    return container, source, str(FileId.for_endpoint(source.endpoint))


@pytest.mark.parametrize("token", ["", SESSION_TOKEN], ids=["short-endpoint", "session-token"])
@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_a_file_incomplete_past_the_ttl_is_given_up_and_reported(
    stack: Stack,
    logs: LogLines,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    token: str,
) -> None:
    """A long endpoint (dynamodb: kept in an item of its own) is reported the same."""
    _, source, file_id = started_file(stack, backend, f"stalled-{backend}.bin", token)
    extra = backend_settings(stack, backend)
    capsys.readouterr()
    monkeypatch.setattr(
        lambda_handler, "_container", expiry_container(stack, extra, later(TTL + 60))
    )

    summary = lambda_handler.expire(SCHEDULED_EVENT, LambdaContext())

    assert summary["expiredFileIds"] == [file_id]
    assert (summary["incompleteFiles"], summary["expired"], summary["failedFileIds"]) == (1, 1, [])
    assert TTL + 59 <= summary["oldestIncompleteFileAgeSeconds"] <= TTL + 600
    json.dumps(summary)
    assert stack.keys("pending/") == []
    [key] = stack.keys("expired/")
    assert key == f"expired/{file_id}.json"
    record = json.loads(stack.read(key))
    assert (record["fileId"], record["backend"]) == (file_id, backend)
    assert (record["partitionsReceived"], record["partitionCount"], record["bytes"]) == (
        2,
        3,
        20_000,
    )
    assert "/uploads/" not in stack.read(key).decode()
    [document] = [d for d in emf_documents(capsys.readouterr().out) if "IncompleteFiles" in d]
    assert (document["IncompleteFilesExpired"], document["IncompleteFiles"]) == (1, 1)
    assert document["OldestIncompleteFileAge"] >= TTL
    [error] = logs.at("ERROR")
    assert error["message"] == "incomplete file given up"
    assert (error["file_id"], error["received"], error["partition_count"]) == (file_id, 2, 3)
    assert error["endpoint"] == source.endpoint.split("?")[0]
    assert error["age_seconds"] >= TTL
    assert SECRET not in logs.text


def test_a_young_incomplete_file_and_a_complete_one_are_left_alone(
    stack: Stack, logs: LogLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    container, _, file_id = started_file(stack, "local", "young.bin", UPLOAD_MAX_ATTEMPTS="1")
    complete = stack.file("complete-never-uploaded.bin", size=20_000, chunk_size=10_000)
    stack.receiver.fail_next(503, times=1)
    stack.invoke(container, stack.seq.records(complete.payloads))
    monkeypatch.setattr(lambda_handler, "_container", expiry_container(stack, {}, later(TTL - 60)))

    summary = lambda_handler.expire(SCHEDULED_EVENT, LambdaContext())

    assert (summary["incompleteFiles"], summary["expired"]) == (1, 0)
    assert len(stack.keys("pending/log/")) == 2  # one entry for each invocation
    assert stack.keys("expired/") == []
    assert logs.at("ERROR") == []
    monkeypatch.setattr(lambda_handler, "_container", expiry_container(stack, {}, later(TTL + 60)))
    assert lambda_handler.expire(SCHEDULED_EVENT, LambdaContext())["expiredFileIds"] == [file_id]
    assert len(stack.keys("pending/")) == 1  # the complete file's entry


def test_on_the_dynamodb_backend_a_late_chunk_of_an_expired_file_is_quarantined(
    stack: Stack, logs: LogLines
) -> None:
    container, source, file_id = started_file(stack, "dynamodb", "late-dynamodb.bin")
    extra = backend_settings(stack, "dynamodb")
    lambda_handler.run_expiry(expiry_container(stack, extra, later(TTL + 60)), LambdaContext())
    late = stack.seq.records(source.payloads[2:])

    assert failures(stack.invoke(container, late)) == []

    [quarantined] = stack.keys("quarantine/")
    assert stack.metadata(quarantined)["reason"] == "file-expired"
    assert stack.keys("pending/") == []
    assert stack.uploads_of(source) == []
    [warning] = logs.at("WARNING")
    assert (warning["reason"], warning["file_id"]) == ("file-expired", file_id)
    rows = [(str(r.file_id), r.status) for r in container.file_report()()]
    assert rows == [(file_id, "expired")]
    assert SECRET not in logs.text


def test_on_the_local_backend_a_late_chunk_of_an_expired_file_starts_it_collecting_again(
    stack: Stack, logs: LogLines
) -> None:
    container, source, file_id = started_file(stack, "local", "late-local.bin")
    lambda_handler.run_expiry(expiry_container(stack, {}, later(TTL + 60)), LambdaContext())
    late = stack.seq.records(source.payloads[2:])

    assert failures(stack.invoke(container, late)) == []

    assert stack.uploads_of(source) == []
    assert stack.keys("quarantine/") == []
    assert len(stack.keys("pending/")) == 1  # the late chunk's entry, with the endpoint
    rows = [(str(r.file_id), r.status, r.received) for r in container.file_report()()]
    assert rows == [(file_id, "collecting", 1)]
    again = lambda_handler.run_expiry(expiry_container(stack, {}, later(TTL + 60)), LambdaContext())
    assert again["expiredFileIds"] == [file_id]
    assert len(logs.at("ERROR")) == 2


def _operator(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], seconds: float
) -> None:
    """`sfb` reads its settings from the environment; its container's clock is moved."""
    for name, value in stack.settings("operator", **extra).items():
        monkeypatch.setenv(name, value)

    def container() -> Container:
        return expiry_container(stack, extra, later(seconds))

    monkeypatch.setattr(cli, "_operator_container", container)


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_sfb_expire_dry_run_lists_what_sfb_expire_then_gives_up(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: str,
) -> None:
    _, source, file_id = started_file(stack, backend, f"by-hand-{backend}.bin")
    _operator(stack, monkeypatch, backend_settings(stack, backend), TTL + 3_600)
    pending = stack.keys("pending/")
    capsys.readouterr()

    assert cli.main(["expire", "--dry-run"]) == 0
    listed = capsys.readouterr().out
    [row] = [line for line in listed.splitlines() if line.startswith(file_id)]
    assert "2/3" in row
    assert source.endpoint.split("?")[0] in row
    assert listed.splitlines()[-1] == "1 of 1 incomplete file(s) would be given up"
    assert SECRET not in listed
    assert stack.keys("pending/") == pending
    assert stack.keys("expired/") == []

    assert cli.main(["expire"]) == 0
    out = capsys.readouterr().out
    assert "1 of 1 incomplete file(s) given up" in out
    assert "IncompleteFilesExpired" not in out  # metrics are the scheduled handler's
    assert SECRET not in out
    assert stack.keys("pending/") == []
    assert stack.keys("expired/") == [f"expired/{file_id}.json"]

    assert cli.main(["expire"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 of 0 incomplete file(s) given up"


def test_sfb_expire_says_in_one_line_why_it_cannot_run(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"STATE_BACKEND": "dynamodb", "STATE_TABLE": "no-such-table"}
    _operator(stack, monkeypatch, extra, 0.0)

    assert cli.main(["expire"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sfb expire: ")
    assert "no-such-table" in err or "ResourceNotFound" in err
    assert len(err.strip().splitlines()) == 1
