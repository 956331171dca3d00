"""The handlers run by Lambda's own runtime interface client (awslambdaric), as in Lambda:
the handler path from the template, settings from the environment, the context and the
answer marshalled by the runtime client, in Lambda's JSON and Text log formats.

The runtime client is a process of its own, polling a Runtime API on 127.0.0.1
(tests/tools/runtime_api.py); S3 is moto's server, uploads go to a local receiver.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import pytest

from adapters.emf_metrics import NAMESPACE
from entrypoints.events import kinesis_event
from tests.assertions import assert_uploaded_once
from tests.e2e.lambda_runtime import ROOT, functions
from tests.e2e.support import SECRET, Stack
from tests.e2e.test_expiry import SCHEDULED_EVENT
from tests.tools.runtime_api import RuntimeApi

PASSED_THROUGH = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)
"""What the aws_env fixture points at moto, handed to the runtime's process."""


class Output:
    """What the runtime's process wrote on stdout and stderr, line by line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def read(self, stream: IO[str]) -> None:
        """Until the process ends (on a thread of its own)."""
        for line in stream:
            with self._lock:
                self.lines.append(line)

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def objects(self) -> list[dict[str, Any]]:
        """Every line that is a JSON object."""
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def entries(self, logger: str) -> list[dict[str, Any]]:
        """The JSON lines of ``logger``."""
        return [entry for entry in self.objects() if entry.get("logger") == logger]


def handler_path(logical_id: str) -> str:
    """The handler the template names for a function: what Lambda's runtime loads."""
    [handler] = [f.handler for f in functions() if f.logical_id == logical_id]
    return handler


@contextmanager
def runtime(api: RuntimeApi, handler: str, settings: dict[str, str]) -> Iterator[Output]:
    """``python -m awslambdaric HANDLER`` in the repo, as Lambda starts a python function,
    polling ``api``; stopped (killed, as Lambda freezes and drops it) at the end. A setting
    given as "" is left out of the environment."""
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(ROOT),
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": "streaming-file-builder",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_LAMBDA_LOG_LEVEL": "INFO",
        **{name: os.environ[name] for name in PASSED_THROUGH if name in os.environ},
        **settings,
    }
    environment = {name: value for name, value in environment.items() if value}
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", handler],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Output()
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=output.read, args=(stdout,))
    reader.start()
    try:
        yield output
    finally:
        process.kill()
        process.wait()
        reader.join()
        stdout.close()


SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEROLESESSIONTOKEN"
"""The role's session token, as Lambda puts it in the function's environment."""


LOGGING = {
    # The template's: JSON, and ApplicationLogLevel as the LogLevel parameter.
    "json-info": {"LOG_LEVEL": "INFO", "AWS_LAMBDA_LOG_LEVEL": "INFO"},
    "json-debug": {"LOG_LEVEL": "DEBUG", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"},
    # A function deployed without the template: Lambda's Text format, no level of its own.
    "text-debug": {
        "LOG_LEVEL": "DEBUG",
        "AWS_LAMBDA_LOG_FORMAT": "Text",
        "AWS_LAMBDA_LOG_LEVEL": "",
    },
}


@pytest.mark.parametrize("log_setup", LOGGING, ids=list(LOGGING))
def test_the_stream_handler_answers_each_batch_and_ties_every_line_to_its_invocation(
    stack: Stack, log_setup: str
) -> None:
    """At DEBUG (the template's LogLevel sets the function's ApplicationLogLevel too, which
    the runtime client gives the root logger), botocore and urllib3 once wrote the session
    token and the presigned query string."""
    settings = {
        **stack.settings("a"),
        **LOGGING[log_setup],
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
    }
    spread = stack.file("spread.bin", size=20_000, chunk_size=10_000)
    whole = stack.file("whole.bin", size=5_000, chunk_size=5_000)
    refused = stack.seq.raw(b"not json")

    with RuntimeApi() as api, runtime(api, handler_path("Function"), settings) as out:
        first = api.invoke(
            kinesis_event(
                [stack.seq.record(spread.payloads[0]), refused, *stack.seq.records(whole.payloads)]
            )
        )
        second = api.invoke(kinesis_event(stack.seq.records(spread.payloads[1:])))
    # Read once the process is gone: its last lines may still be in the pipe when the
    # runtime's response comes back.
    entries = out.entries("sfb")
    metrics = [o for o in out.objects() if "_aws" in o]

    assert (first.kind, first.body) == ("response", {"batchItemFailures": []})
    assert (second.kind, second.body) == ("response", {"batchItemFailures": []})
    assert_uploaded_once(stack.uploads_of(whole), whole.data)
    assert_uploaded_once(stack.uploads_of(spread), spread.data)
    uploaded = {
        e["endpoint"]: e.get("request_id") for e in entries if e["message"] == "file uploaded"
    }
    assert uploaded == {
        whole.endpoint.split("?")[0]: first.request_id,
        spread.endpoint.split("?")[0]: second.request_id,
    }
    [rejected] = [e for e in entries if e["message"] == "record rejected"]
    assert rejected["request_id"] == first.request_id
    assert {e.get("request_id") for e in entries} == {first.request_id, second.request_id}
    # The metrics are EMF documents on stdout, each line whole, in either log format.
    assert sum(m.get("FilesCompleted", 0) for m in metrics) == 2
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE for m in metrics)
    assert SECRET not in out.text
    assert SESSION_TOKEN not in out.text


ERRORS = {
    "a setting missing": ({"S3_BUCKET": ""}, kinesis_event([]), "SettingsError", "S3_BUCKET"),
    "an event that is not a Kinesis batch": (
        {},
        {"Records": [{"body": "an SQS message"}]},
        "MalformedEvent",
        "",
    ),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_an_invocation_that_cannot_run_is_reported_to_lambda_as_its_error(
    stack: Stack, case: str
) -> None:
    """Lambda retries the batch, and its log shows the error's type and message: they name
    the cause."""
    changed, event, error_type, named = ERRORS[case]
    settings = {**stack.settings("a"), **changed}

    with RuntimeApi() as api, runtime(api, handler_path("Function"), settings) as out:
        failed = api.invoke(event)
        again = api.invoke(event)

    for outcome in (failed, again):
        assert outcome.kind == "error"
        assert outcome.body["errorType"] == error_type
        assert named in outcome.body["errorMessage"]
    assert error_type in out.text


def test_the_expiry_handler_returns_its_summary_through_the_runtime_client(stack: Stack) -> None:
    with RuntimeApi() as api, runtime(api, handler_path("ExpireFunction"), stack.settings("x")):
        summary = api.invoke(SCHEDULED_EVENT)

    assert summary.kind == "response"
    assert summary.body == {
        "incompleteFiles": 0,
        "expired": 0,
        "oldestIncompleteFileAgeSeconds": 0.0,
        "expiredFileIds": [],
        "failedFileIds": [],
    }
