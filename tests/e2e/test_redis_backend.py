"""STATE_BACKEND=redis through the handler and `sfb`, on a real redis-server and moto's S3:
what only this backend has (data lost by a restart, a password in the URL, chunks in memory).
The scenarios every shared backend holds run in test_dynamodb_backend.py for both."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import redis
from dependency_injector import providers

from adapters.redis_chunks import EPOCH_KEY
from domain import FileId
from entrypoints import lambda_handler
from entrypoints.cli import main
from entrypoints.container import Container, build_container
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LambdaContext, LogLines, Stack, failures
from tests.tools.redis_server import running_redis

TTL = 86_400.0
PASSWORD = "redis-pa55w0rd-in-the-url"


class Ticks:
    """A monotonic clock that moves 10 s at every read: the chunk store looks at the server
    (its memory, its data set) before every chunk instead of once a second."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def __call__(self) -> float:
        return 10.0 * next(self._counter)


@pytest.fixture
def server(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
        yield client


def redis_container(stack: Stack, url: str, name: str, **extra: str) -> Container:
    container = build_container(stack.settings(name, STATE_BACKEND="redis", REDIS_URL=url, **extra))
    container.redis_chunks.add_kwargs(clock=Ticks())
    return container


def lose_everything(server: redis.Redis) -> None:
    """What a restart without persistence leaves: no keys, no scripts, no connections."""
    server.flushall()
    server.script_flush()
    server.client_kill_filter(_type="normal", skipme=True)


@pytest.mark.parametrize("budget", ["134217728", "0"], ids=["in-redis", "spilled-to-s3"])
def test_after_redis_lost_its_data_no_wrong_body_is_uploaded_and_the_loss_is_an_error(
    stack: Stack, redis_url: str, server: redis.Redis, logs: LogLines, budget: str
) -> None:
    container = redis_container(stack, redis_url, "lambda", REDIS_MAX_CHUNK_BYTES=budget)
    source = stack.file("lost.bin", size=30_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    assert failures(stack.invoke(container, records[:2])) == []

    lose_everything(server)
    response = stack.invoke(container, records[2:])

    assert failures(response) == []  # the chunk is durable in the new data set
    assert stack.uploads_of(source) == []
    [error] = logs.at("ERROR")
    assert "Redis lost its data" in error["message"]
    assert server.get(EPOCH_KEY) is not None

    expiry = build_container(stack.settings("expiry", STATE_BACKEND="redis", REDIS_URL=redis_url))
    expiry.clock.override(providers.Object(lambda: time.time() + TTL + 60))
    summary = lambda_handler.run_expiry(expiry, LambdaContext())

    file_id = str(FileId.for_endpoint(source.endpoint))
    assert summary["expiredFileIds"] == [file_id]
    given_up = [e for e in logs.at("ERROR") if e["message"] == "incomplete file given up"]
    assert [(e["file_id"], e["received"], e["partition_count"]) for e in given_up] == [
        (file_id, 1, 3)
    ]
    assert stack.keys("pending/") == []  # what was spilled before the loss goes too
    assert stack.uploads_of(source) == []


def test_chunks_in_redis_cost_no_aws_request_until_the_file_completes(
    stack: Stack, redis_url: str, server: redis.Redis
) -> None:
    container = redis_container(stack, redis_url, "lambda")
    source = stack.file("in-memory.bin", size=40_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    calls: list[str] = []
    container.s3_client().meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name)
    )

    assert failures(stack.invoke(container, records[:3])) == []
    assert calls == []
    assert failures(stack.invoke(container, records[3:])) == []

    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert calls == []
    assert list(server.scan_iter(match="sfb:{*}:c")) == []


def test_a_password_in_redis_url_never_reaches_a_log_or_stderr(
    stack: Stack,
    logs: LogLines,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with running_redis(password=PASSWORD) as url:
        assert PASSWORD in url
        container = redis_container(stack, url, "lambda")
        source = stack.file("with-password.bin", size=20_000, chunk_size=10_000)
        assert failures(stack.invoke(container, stack.seq.records(source.payloads))) == []
        assert_uploaded_once(stack.uploads_of(source), source.data)

        wrong = url.replace(PASSWORD, f"{PASSWORD}-but-wrong")
        for name, value in stack.settings("operator", STATE_BACKEND="redis").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("REDIS_URL", wrong)
        assert main(["status"]) != 0
        monkeypatch.setenv("REDIS_URL", "http://user:" + PASSWORD + "@nowhere")
        assert main(["status"]) != 0

    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 2
    for text in (out, err, logs.text):
        assert PASSWORD not in text
        assert SECRET not in text
    assert "REDIS_URL" in err.splitlines()[1]


def test_sfb_status_and_redrive_finish_a_complete_file_the_stream_gave_up_on(
    stack: Stack,
    redis_url: str,
    server: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    container = redis_container(stack, redis_url, "lambda", UPLOAD_MAX_ATTEMPTS="1")
    source = stack.file("given-up.bin", size=30_000, chunk_size=10_000)
    stack.receiver.fail_next(503, times=1)
    assert len(failures(stack.invoke(container, stack.seq.records(source.payloads)))) == 1
    file_id = str(FileId.for_endpoint(source.endpoint))
    for name, value in stack.settings("operator", STATE_BACKEND="redis").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", redis_url)

    assert main(["status"]) == 0
    listed = capsys.readouterr().out
    assert f"next: complete but never uploaded: sfb redrive {file_id}" in listed
    assert SECRET not in listed

    assert main(["redrive", file_id]) == 0
    assert f"{file_id}: uploaded" in capsys.readouterr().out
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert list(server.scan_iter(match="sfb:{*}:c")) == []
    assert main(["status"]) == 0
    assert file_id not in capsys.readouterr().out


def test_the_handler_runs_the_redis_backend_from_its_environment(
    stack: Stack, redis_url: str, server: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stack.settings("lambda", STATE_BACKEND="redis").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(lambda_handler, "_container", None)
    source = stack.file("from-env.bin", size=25_000, chunk_size=10_000)
    event = {"Records": stack.seq.records(source.payloads)}

    response = lambda_handler.handler(event, LambdaContext())

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert server.hget(f"sfb:{{{FileId.for_endpoint(source.endpoint)}}}:s", "status") == (
        b"uploaded"
    )


def test_a_batch_of_whole_files_uploads_each_once_and_its_late_duplicates_never(
    stack: Stack, redis_url: str, server: redis.Redis
) -> None:
    container = redis_container(stack, redis_url, "lambda")
    sources = [stack.file(f"small-{n}.jpg", size=2_000 + n, chunk_size=4_000) for n in range(30)]
    records = stack.seq.records([s.payload(0) for s in sources])

    assert failures(stack.invoke(container, records)) == []
    late = stack.seq.records([s.payload(0) for s in sources[::3]])
    assert failures(stack.invoke(redis_container(stack, redis_url, "other"), late)) == []

    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data, to=source.endpoint)
        state = server.hget(f"sfb:{{{FileId.for_endpoint(source.endpoint)}}}:s", "status")
        assert state == b"uploaded"
    assert list(server.scan_iter(match="sfb:{*}:c")) == []
    assert list(server.scan_iter(match="sfb:{*}:p")) == [], "whole: no partition was counted"
    assert stack.keys("pending/") == []
