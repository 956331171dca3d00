"""A delay proxy: every AWS request waits a fixed time, then goes to moto unchanged.

moto in-process answers in a millisecond or so; S3 and DynamoDB answer in tens. The clients
of the realistic section take this proxy as their endpoint, so each of their requests pays
the delay once, as a round trip to AWS would. Requests and answers are streamed through
untouched (headers included: moto does not check signatures, and the Host the client
signed is the one moto sees), so whatever moto says, the client hears.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.tools.receiver import LoopbackServer, Served

BLOCK = 1 << 20
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that describe one connection, not the message: never forwarded."""


class DelayProxy(Served):
    """``with DelayProxy(upstream, delay) as proxy``: ``proxy.url`` is the endpoint to use."""

    def __init__(self, upstream: str, delay_seconds: float = 0.020) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError("the upstream is http://host:port")
        self.delay_seconds = delay_seconds
        self.requests = 0
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler_for(self))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def connect(self) -> http.client.HTTPConnection:
        host, port = self._upstream
        connection = http.client.HTTPConnection(host, port, timeout=60)
        connection.connect()
        _no_delay(connection.sock)
        return connection

    def _count(self) -> None:
        with self._lock:
            self.requests += 1


def _no_delay(connection: socket.socket) -> None:
    """The proxy writes a message's headers and its body apart: with Nagle's algorithm on,
    the body then waits for the peer's delayed ACK (40 ms on Linux), which made every
    request with a body (DynamoDB's all, S3's PUTs) and every answer with one pay about twice
    the delay the proxy stands for. AWS's endpoints and SDKs do not."""
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _handler_for(proxy: DelayProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive towards the client, as AWS's endpoints do

        def setup(self) -> None:
            super().setup()
            _no_delay(self.connection)

        def _forward(self) -> None:
            body = self._request_body()
            time.sleep(proxy.delay_seconds)
            proxy._count()
            upstream = proxy.connect()
            try:
                upstream.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        upstream.putheader(name, value)
                if body is None:
                    length = int(self.headers.get("Content-Length", "0"))
                    upstream.putheader("Content-Length", str(length))
                    upstream.endheaders()
                    while length > 0:
                        block = self.rfile.read(min(length, BLOCK))
                        if not block:
                            raise ConnectionError("the client stopped sending its body")
                        upstream.send(block)
                        length -= len(block)
                else:
                    upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body)
                self._relay(upstream.getresponse())
            finally:
                upstream.close()

        def _request_body(self) -> bytes | None:
            """None when the body has a Content-Length (it is streamed); a chunked body is
            read whole here, since moto wants a length."""
            if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
                return None
            parts = bytearray()
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(parts)

        def _relay(self, response: http.client.HTTPResponse) -> None:
            self.send_response_only(response.status, response.reason)
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            length = response.getheader("Content-Length")
            bodiless = self.command == "HEAD" or response.status in (204, 304)
            if length is None and not bodiless:
                whole = response.read()  # werkzeug may chunk: give the client a length
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(whole)))
                self.end_headers()
                self.wfile.write(whole)
                return
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if bodiless:
                return
            while block := response.read(BLOCK):
                self.wfile.write(block)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the benchmark counts requests on the clients."""

    return Handler
