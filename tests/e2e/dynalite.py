"""dynalite, a DynamoDB emulator that locks each item around a conditional update, on 127.0.0.1.

moto does not serialise conditional writes, so races between containers are only real against
dynalite. It is installed by ``make test`` (``npm ci --prefix tools/dynalite``).
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROOT = Path(__file__).resolve().parents[2]
DYNALITE = ROOT / "tools" / "dynalite" / "node_modules" / ".bin" / "dynalite"
READY = "listening at"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
ATTEMPTS = 3
"""A port found free may be taken before dynalite binds it: then another one is tried."""


class DynaliteUnavailable(RuntimeError):
    """dynalite is not installed or did not start; the message says what to do."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_dynalite() -> Iterator[str]:
    """Start dynalite, yield its URL once it says it listens, and stop it afterwards."""
    node = shutil.which("node")
    if node is None:
        raise DynaliteUnavailable("node is not on PATH: install Node.js, then run `make test`")
    if not DYNALITE.exists():
        raise DynaliteUnavailable(
            f"dynalite is not installed ({DYNALITE} is missing): run `make test`, or "
            "`npm ci --prefix tools/dynalite --no-audit --no-fund`"
        )
    said = ""
    for _ in range(ATTEMPTS):
        port = free_port()
        options = ["--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"]
        server = _Server([node, str(DYNALITE), *options])
        try:
            said = server.wait_until_listening()
            if not said:
                yield f"http://127.0.0.1:{port}"
                return
        finally:
            server.stop()
    raise DynaliteUnavailable(
        f"dynalite did not start after {ATTEMPTS} attempts; it said: {said!r}"
    )


class _Server:
    """The dynalite process, and a thread reading what it prints so its pipe never fills."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_until_listening(self) -> str:
        """Wait for dynalite's ready line; return what it said instead if it never comes."""
        said: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return "".join(said) or f"(exited with {self._process.wait()})"
            if READY in line.lower():
                return ""
            said.append(line)
        return "".join(said) + f"(not listening after {START_TIMEOUT:.0f} s)"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=STOP_TIMEOUT)
        if self._process.stdout is not None:
            self._process.stdout.close()


def create_state_table(client: DynamoDBClient, table: str) -> None:
    """The table ``sfb provision`` makes, less TTL: dynalite has no UpdateTimeToLive."""
    client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "file_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
