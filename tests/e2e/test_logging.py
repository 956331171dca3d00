"""Logs are JSON lines a search can use, and a presigned query string never reaches them."""

from __future__ import annotations

import base64
import json

import pytest

from entrypoints.events import kinesis_event
from entrypoints.lambda_handler import handle
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LambdaContext, LogLines, Stack, closed_port, failures


def test_no_log_line_of_a_full_run_holds_the_put_endpoints_query_string(
    stack: Stack, logs: LogLines, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fine = stack.file("fine.bin", size=30_000, chunk_size=10_000)
    flaky = stack.file("flaky.bin", size=20_000, chunk_size=10_000)
    refused = stack.file("refused.bin", size=20_000, chunk_size=10_000)
    stranded = stack.file("stranded.bin", size=20_000, chunk_size=10_000)
    container = stack.container("a", LOG_LEVEL="DEBUG", UPLOAD_MAX_ATTEMPTS="2")
    poison = [
        stack.seq.record(fine.payload(1, partition="one")),
        stack.seq.record(fine.payload(1, partition=7)),
        stack.seq.record(fine.payload(1, content="***")),
        stack.seq.record(fine.payload(1, partitionCount=9)),
        stack.seq.record(fine.payload(0, content=base64.b64encode(b"other").decode("ascii"))),
        stack.seq.record(
            fine.payload(0, putEndpoint=f"https://10.0.0.1/private?X-Amz-Signature={SECRET}")
        ),
        stack.seq.record(
            fine.payload(0, putEndpoint=f"ftp://127.0.0.1/x?X-Amz-Signature={SECRET}")
        ),
    ]

    stack.invoke(container, [stack.seq.record(fine.payload(0)), *poison])
    stack.invoke(container, stack.seq.records(fine.payloads[1:]))
    stack.receiver.fail_next(503, times=3)
    stack.invoke(container, stack.seq.records(flaky.payloads))
    stack.invoke(container, stack.seq.records(flaky.payloads[-1:]))
    stack.receiver.fail_next(404)
    stack.invoke(container, stack.seq.records(refused.payloads))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cut_off = stack.container("cut-off", LOG_LEVEL="DEBUG")
    response = stack.invoke(cut_off, stack.seq.records(stranded.payloads[:1]))

    assert failures(response) != []
    assert_uploaded_once(stack.uploads_of(fine), fine.data)
    assert_uploaded_once(stack.uploads_of(flaky), flaky.data)
    for level in ("INFO", "WARNING", "ERROR"):
        assert logs.lines_with(f'"level": "{level}"')
    for name in ("fine.bin", "flaky.bin", "refused.bin", "stranded.bin"):
        assert f"/uploads/{name}" in logs.text
    captured = capfd.readouterr()
    for text in (logs.text, captured.out, captured.err):
        assert SECRET not in text
        assert "X-Amz-Signature" not in text


def test_each_log_line_is_json_with_level_time_and_the_invocations_request_id(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("logged.bin", size=20_000, chunk_size=10_000)
    container = stack.container("a")

    stack.invoke(container, stack.seq.records(source.payloads))

    [uploaded] = [e for e in logs.entries() if e["message"] == "file uploaded"]
    assert uploaded["level"] == "INFO"
    assert uploaded["time"]
    assert uploaded["request_id"]
    assert uploaded["bytes"] == len(source.data)
    assert uploaded["endpoint"] == source.endpoint.split("?")[0]


WORKER_THREAD_LINES = {
    # The log's prefetch looks up a new shard's parents while the records are validated.
    "the log's prefetch": ("the records' stream does not exist: no reshard is followed", 0),
    # Files of one batch are uploaded on lanes of their own, side by side.
    "files on their lanes": ("file uploaded", 0),
    # An upload retried, on its file's lane.
    "a retry on a lane": ("upload attempt failed; retrying", 1),
}


@pytest.mark.parametrize("case", WORKER_THREAD_LINES, ids=list(WORKER_THREAD_LINES))
def test_a_line_written_on_a_worker_thread_carries_the_invocations_request_id(
    stack: Stack, logs: LogLines, case: str
) -> None:
    """Threads do not inherit contextvars: lines written on files' lanes and on the log's
    prefetch had no request id, so no search could tie them to their invocation."""
    message, failing_puts = WORKER_THREAD_LINES[case]
    sources = [stack.file(f"side-{n}.bin", size=5_000, chunk_size=5_000) for n in range(3)]
    container = stack.container("a")
    context = LambdaContext()
    stack.receiver.fail_next(503, times=failing_puts)

    records = stack.seq.records(p for source in sources for p in source.payloads)
    response = handle(container, kinesis_event(records), context)

    assert failures(response) == []
    written = [e for e in logs.entries() if e["message"] == message]
    assert written, f"no {message!r} line was written"
    assert {e.get("request_id") for e in logs.entries()} == {context.aws_request_id}


def test_log_level_warning_keeps_info_lines_out(stack: Stack, logs: LogLines) -> None:
    source = stack.file("quiet.bin", size=20_000, chunk_size=10_000)
    container = stack.container("a", LOG_LEVEL="WARNING")

    stack.invoke(container, [stack.seq.raw(b"not json"), *stack.seq.records(source.payloads)])

    assert [e["level"] for e in logs.entries()] == ["WARNING"]


def test_every_log_line_is_one_json_object_even_when_an_error_quotes_an_s3_url(
    stack: Stack, logs: LogLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = stack.file("stranded.bin", size=20_000, chunk_size=10_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    cut_off = stack.container("cut-off")

    stack.invoke(cut_off, [stack.seq.raw(b"not json"), *stack.seq.records(source.payloads[:1])])

    lines = logs.text.splitlines()
    assert len(lines) >= 2
    for line in lines:
        entry = json.loads(line)
        assert isinstance(entry, dict)
        assert entry["level"] == "ERROR"
