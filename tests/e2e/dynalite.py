"""dynalite, a DynamoDB emulator that locks each item around a conditional update, on 127.0.0.1.

moto does not serialise conditional writes, so races between containers are only real against
dynalite. It is installed by ``make test`` (``npm ci --prefix tools/dynalite``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.dynamodb_state import TABLE_DEFINITION
from tests.tools.server_process import ServerProcess, free_port

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ROOT = Path(__file__).resolve().parents[2]
DYNALITE = ROOT / "tools" / "dynalite" / "node_modules" / ".bin" / "dynalite"
READY = "listening at"
ATTEMPTS = 3
"""A port found free may be taken before dynalite binds it: then another one is tried."""


class DynaliteUnavailable(RuntimeError):
    """dynalite is not installed or did not start; the message says what to do."""


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
        server = ServerProcess([node, str(DYNALITE), *options], cwd=ROOT)
        try:
            said = server.wait_until_ready(READY)
            if not said:
                yield f"http://127.0.0.1:{port}"
                return
        finally:
            server.stop()
    raise DynaliteUnavailable(
        f"dynalite did not start after {ATTEMPTS} attempts; it said: {said!r}"
    )


def create_state_table(client: DynamoDBClient, table: str) -> None:
    """The table ``sfb provision`` makes, less TTL: dynalite has no UpdateTimeToLive."""
    client.create_table(TableName=table, **TABLE_DEFINITION)
    client.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
