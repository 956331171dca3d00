"""The public entrypoint as Lambda calls it: settings from the environment, built once."""

from __future__ import annotations

import pytest

from adapters.kinesis import MalformedEvent
from adapters.settings import SettingsError
from entrypoints import lambda_handler
from entrypoints.events import kinesis_event
from tests.assertions import assert_uploaded_once
from tests.e2e.support import LambdaContext, LogLines, Stack, failures


@pytest.fixture
def cold_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh Lambda container: no composition root yet, and none left behind."""
    monkeypatch.setattr(lambda_handler, "_container", None)


@pytest.mark.usefixtures("cold_start")
def test_the_handler_builds_its_container_from_the_environment_once_and_reuses_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, logs: LogLines
) -> None:
    for name, value in stack.settings("lambda").items():
        monkeypatch.setenv(name, value)
    source = stack.file("through-handler.bin", size=45_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)

    first = lambda_handler.handler(kinesis_event(records[:3]), LambdaContext())
    built = lambda_handler._container
    monkeypatch.setenv("S3_BUCKET", "settings-are-read-at-the-cold-start-only")
    context = LambdaContext()
    second = lambda_handler.handler(kinesis_event(records[3:]), context)

    assert failures(first) == failures(second) == []
    assert built is not None
    assert lambda_handler._container is built
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    [uploaded] = [e for e in logs.entries() if e["message"] == "file uploaded"]
    assert uploaded["request_id"] == context.aws_request_id


@pytest.mark.usefixtures("cold_start")
def test_a_missing_setting_fails_the_cold_start_naming_the_variable(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.settings("lambda").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("S3_BUCKET")

    with pytest.raises(SettingsError, match="S3_BUCKET"):
        lambda_handler.handler(kinesis_event([]), LambdaContext())

    assert lambda_handler._container is None


def test_an_event_that_is_not_a_kinesis_batch_fails_the_invocation(stack: Stack) -> None:
    container = stack.container("a")

    with pytest.raises(MalformedEvent):
        lambda_handler.handle(container, {"Records": [{"body": "an SQS message"}]}, None)


def test_an_empty_batch_reports_nothing(stack: Stack) -> None:
    container = stack.container("a")

    assert stack.invoke(container, []) == {"batchItemFailures": []}
