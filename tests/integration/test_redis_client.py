"""The redis backend's client: bounded by the deadline margin, one pool per container, a URL
never shown with its password, and redis-py never imported by the other backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from adapters.redis_client import redact_url, redis_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("rediss://app:s3cret@cache:6380/1", "rediss://app:***@cache:6380/1"),
        ("redis://:s3cret@cache", "redis://:***@cache"),
        ("redis://s3cret@cache", "redis://:***@cache"),
        ("redis://app:s3c/ret@cache:6379", "redis://app:***@cache:6379"),
        ("redis://app:s3c@ret@cache:6379", "redis://app:***@cache:6379"),
        ("app:s3cret@cache", "<not a URL>"),
    ],
)
def test_a_redis_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_every_call_and_its_retries_end_inside_the_deadline_margin() -> None:
    client = redis_client(
        "rediss://app:pw@cache.internal:6380/2", deadline_margin=10.0, connections=32
    )
    pool = client.connection_pool
    options = pool.connection_kwargs

    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (0.5, 1.25)
    assert options["retry"].get_retries() == 2
    assert 3 * (0.5 + 1.25) + 2 * 0.5 < 10.0
    assert pool.max_connections == 32
    assert (options["host"], options["port"], options["db"]) == ("cache.internal", 6380, 2)
    assert "SSL" in pool.connection_class.__name__


def test_the_other_backends_never_import_redis_py_at_cold_start() -> None:
    script = (
        "import sys, entrypoints.lambda_handler, entrypoints.container;"
        "sys.exit(1 if 'redis' in sys.modules else 0)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=False)

    assert done.returncode == 0, "importing the handler imported redis-py"


def test_a_call_finding_every_connection_busy_waits_for_one_instead_of_failing_at_once(
    redis_url: str,
) -> None:
    client = redis_client(redis_url, deadline_margin=0.8, connections=1)
    pool = client.connection_pool
    held = [pool.get_connection() for _ in range(10)]  # the pool's 10 connections, all taken

    with pytest.raises(redis.ConnectionError, match="No connection available"):
        client.ping()  # waited the pool's timeout (0.1 s here), then gave up
    pool.release(held.pop())
    assert client.ping()
    for connection in held:
        pool.release(connection)
