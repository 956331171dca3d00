"""moto's server, the delay proxy and the receivers, each in a process of its own, for the
realistic section.

In the bench's own process, moto's CPU (parsing a 2.8 MB PUT, serialising a listing) and the
receivers' (parsing each PUT, hashing its body) take the interpreter lock from the handler's
threads and land in the handler's measured seconds, which Lambda bills; real S3 and
DynamoDB, and the S3 that presigned endpoints name, spend their CPU elsewhere. Here they do
too: the handler's seconds are its own, plus the round trips it waits on. Nor do they share
one interpreter lock with each other: a receiver hashing a 20 MiB upload held up moto's
answers to the same invocation's reads, and the proxy's relaying, which stands for the
network, waited on moto's parsing. Requests are still counted on the containers' clients,
so the counts stay exact; what the receivers got is asked of their process
(``ApartReceiver``), their clock being the machine's monotonic one (time.perf_counter on
Linux), which every process reads alike.

DynamoDB is dynalite's, not moto's: moto spends 12-14 ms of its own CPU on each DynamoDB
update and serves them one after another, so an invocation's three adds, which DynamoDB
answers side by side, waited on each other (about 40 ms an invocation, billed as the
handler's). dynalite, a server of its own that answers requests as they come, is also the
DynamoDB the concurrency tests race against.

``python -m bench.aws_apart ROLE ...`` (``moto``, ``proxy UPSTREAM DELAY``, ``receivers
ANSWER``) prints one JSON line of addresses and serves until its standard input closes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import parse_qs, quote, urlsplit

from bench.delay_proxy import DelayProxy
from tests.e2e.dynalite import running_dynalite
from tests.tools.receiver import LocalReceiver, LoopbackServer, ReceivedPut, Served

_ROOT = Path(__file__).resolve().parent.parent


class ApartReceiver:
    """A receiver of the other process, as the bench reads it: an address for each upload,
    and the latest PUT received at a path (query string included)."""

    def __init__(self, base: str, control: str, answer_seconds: float = 0.0) -> None:
        self._base = base.rstrip("/")
        self._control = control
        self.answer_seconds = answer_seconds

    def url(self, path: str) -> str:
        return f"{self._base}/{path.lstrip('/')}"

    def upload(self, path: str) -> ReceivedPut | None:
        try:
            address = f"{self._control}{quote(path, safe='')}"  # http://127.0.0.1 only
            with urllib.request.urlopen(address) as answer:  # noqa: S310
                put = json.loads(answer.read())
        except HTTPError as error:
            if error.code == 404:
                return None
            raise
        return ReceivedPut(
            path, put["headers"], put["size"], put["sha256"], None, put["finished_at"]
        )

    def finished_at(self, path: str) -> float:
        put = self.upload(path)
        if put is None:
            raise RuntimeError(f"nothing was uploaded to {path.split('?')[0]}")
        return put.finished_at


class AwsApart(Served):
    """``with AwsApart(delay, answer) as aws``: ``aws.direct`` is moto, ``aws.delayed`` the
    proxy in front of it, ``aws.direct_dynamodb`` and ``aws.delayed_dynamodb`` the same for
    dynalite, ``aws.receiver`` a receiver, ``aws.slow_receiver`` one that answers each PUT
    ``answer_seconds`` after its last byte."""

    def __init__(self, delay_seconds: float, answer_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self.answer_seconds = answer_seconds
        self.direct = ""
        self.delayed = ""
        self.direct_dynamodb = ""
        self.delayed_dynamodb = ""
        self.receiver = ApartReceiver("", "")
        self.slow_receiver = ApartReceiver("", "")
        self._processes: list[subprocess.Popen[str]] = []
        self._servers = ExitStack()

    def start(self) -> AwsApart:
        try:
            self.direct = str(self._spawn("moto")["direct"])
            self.delayed = self._delayed(self.direct)
            self.direct_dynamodb = self._servers.enter_context(running_dynalite())
            self.delayed_dynamodb = self._delayed(self.direct_dynamodb)
            here = self._spawn("receivers", repr(self.answer_seconds))
        except BaseException:
            self.stop()
            raise
        control = str(here["control"])
        self.receiver = ApartReceiver(str(here["receiver"]), f"{control}/0?path=")
        self.slow_receiver = ApartReceiver(
            str(here["slow_receiver"]), f"{control}/1?path=", self.answer_seconds
        )
        return self

    def _delayed(self, upstream: str) -> str:
        """A delay proxy in front of ``upstream``, in a process of its own."""
        return str(self._spawn("proxy", upstream, repr(self.delay_seconds))["delayed"])

    def _spawn(self, role: str, *args: str) -> dict[str, object]:
        """Start ``python -m bench.aws_apart ROLE ARGS`` and read the addresses it prints."""
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "bench.aws_apart", role, *args],
            cwd=_ROOT,
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the bench's {role} process did not start")
        addresses: dict[str, object] = json.loads(line)
        return addresses

    def stop(self) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._servers.close()


def _control_for(receivers: list[LocalReceiver]) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        """``GET /<receiver>?path=<path>``: the latest PUT there, as JSON, or 404."""

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            receiver = receivers[int(parts.path.strip("/"))]
            path = parse_qs(parts.query)["path"][0]
            with receiver._lock:
                put = next((p for p in reversed(receiver.received) if p.path == path), None)
            body = (
                b""
                if put is None
                else json.dumps(
                    {
                        "headers": put.headers,
                        "size": put.size,
                        "sha256": put.sha256,
                        "finished_at": put.finished_at,
                    }
                ).encode()
            )
            self.send_response(404 if put is None else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    return Control


def main(argv: list[str]) -> int:
    """``moto``: moto's server; ``proxy UPSTREAM DELAY``: the delay proxy in front of it;
    ``receivers ANSWER``: the upload receivers and their control. Each prints its addresses
    as one JSON line and serves until its standard input closes."""
    role, args = argv[0], argv[1:]
    if role == "moto":
        return _serve_moto()
    if role == "proxy":
        return _serve_proxy(args[0], float(args[1]))
    if role == "receivers":
        return _serve_receivers(float(args[0]))
    raise SystemExit(f"unknown role {role!r}")


def _serve_moto() -> int:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        print(json.dumps({"direct": f"http://{host}:{port}"}), flush=True)
        sys.stdin.read()  # until the bench closes it
    finally:
        server.stop()
    return 0


def _serve_proxy(upstream: str, delay_seconds: float) -> int:
    with DelayProxy(upstream, delay_seconds) as proxy:
        print(json.dumps({"delayed": proxy.url}), flush=True)
        sys.stdin.read()  # until the bench closes it
    return 0


def _serve_receivers(answer_seconds: float) -> int:
    from bench.world import SlowReceiver, TimedReceiver

    receivers: list[LocalReceiver] = [TimedReceiver(), SlowReceiver(answer_seconds)]
    control = LoopbackServer(_control_for(receivers))
    with receivers[0], receivers[1]:
        control.start()
        try:
            addresses = {
                "receiver": receivers[0].url(""),
                "slow_receiver": receivers[1].url(""),
                "control": f"http://127.0.0.1:{control.port}",
            }
            print(json.dumps(addresses), flush=True)
            sys.stdin.read()  # until the bench closes it
        finally:
            control.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
