"""A local HTTP endpoint that receives PUTs the way S3 does, for the tests and the benchmark.

Like S3 it refuses chunked transfer encoding (411) and needs Content-Length. It listens on
127.0.0.1 only and records each request's path, headers, size and sha256.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from attrs import frozen


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 serving from a thread of its own, between ``start`` and
    ``stop``. Many connections opened at once (files' lanes) must not wait for a SYN to be
    sent again: the default listen backlog of 5 drops the rest for a second."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """A client that went away (a runtime stopped with a connection kept alive, an upload
        given up) is routine: only other errors are printed, as socketserver does."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


@frozen
class ReceivedPut:
    path: str
    headers: dict[str, str]
    size: int
    sha256: str
    body: bytes | None
    finished_at: float
    """time.perf_counter() when the last byte arrived."""


class Served:
    """A server of the tests' own on a LoopbackServer: ``with`` starts it and stops it."""

    _server: LoopbackServer

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalReceiver(Served):
    """Start with ``with LocalReceiver() as receiver``; ``receiver.url(path)`` is an endpoint.

    ``fail_next(status, times)`` makes the next requests answer ``status`` instead.
    """

    def __init__(self, keep_bodies: bool = True) -> None:
        self.keep_bodies = keep_bodies
        self.received: list[ReceivedPut] = []
        self.refused: list[str] = []
        self._failures: deque[int] = deque()
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler_for(self))

    @property
    def port(self) -> int:
        return self._server.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def _next_failure(self) -> int | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, put: ReceivedPut) -> None:
        with self._lock:
            self.received.append(put)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, answers of a known length, and no access log: the tests read
    what was received, not the log."""

    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _handler_for(receiver: LocalReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_PUT(self) -> None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                receiver.refused.append(self.path)
                self._answer(411, b"MissingContentLength: chunked encoding is refused")
                self.close_connection = True
                return
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                receiver.refused.append(self.path)
                self._answer(411, b"MissingContentLength")
                self.close_connection = True
                return
            remaining = int(length_header)
            digest = hashlib.sha256()
            kept = bytearray() if receiver.keep_bodies else None
            size = 0
            while remaining > 0:
                block = self.rfile.read(min(remaining, 1 << 20))
                if not block:
                    break
                remaining -= len(block)
                size += len(block)
                digest.update(block)
                if kept is not None:
                    kept.extend(block)
            if remaining > 0:
                receiver.refused.append(self.path)
                self.close_connection = True
                return
            status = receiver._next_failure()
            if status is not None:
                self._answer(status, b"injected failure")
                return
            receiver._record(
                ReceivedPut(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    size=size,
                    sha256=digest.hexdigest(),
                    body=bytes(kept) if kept is not None else None,
                    finished_at=time.perf_counter(),
                )
            )
            self._answer(200, b"")

    return Handler
