"""A server the tests start on 127.0.0.1 (dynalite, redis-server), read line by line until it
says it is ready, and stopped when they are done."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
from pathlib import Path

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port free now; the server may lose it to another process before it binds, so
    callers try again on a failed start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    """The process, and a thread reading what it prints so its pipe never fills."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def wait_until_ready(self, ready: str) -> str:
        """Wait for a line holding ``ready`` (case-insensitive); return what the server said
        instead if it never comes ("" once ready)."""
        said: list[str] = []
        deadline = time.monotonic() + START_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                return "".join(said) or f"(exited with {self._process.wait()})"
            if ready.lower() in line.lower():
                return ""
            said.append(line)
        return "".join(said) + f"(not ready after {START_TIMEOUT:.0f} s)"

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
