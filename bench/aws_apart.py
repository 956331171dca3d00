"""moto's server and the delay proxy in a process of their own, for the realistic section.

In the bench's own process, moto's CPU (parsing a 2.8 MB PUT, serialising a listing) takes
the interpreter lock from the handler's threads and lands in the handler's measured seconds,
which Lambda bills; real S3 and DynamoDB spend their CPU elsewhere. Here they do too: the
handler's seconds are its own, plus the round trips it waits on. Requests are still counted
on the containers' clients, so the counts stay exact.

``python -m bench.aws_apart DELAY`` prints one JSON line, ``{"direct": url, "delayed": url}``,
and serves until its standard input closes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from bench.delay_proxy import DelayProxy

_ROOT = Path(__file__).resolve().parent.parent


class AwsApart:
    """``with AwsApart(delay) as aws``: ``aws.direct`` is moto, ``aws.delayed`` the proxy."""

    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self.direct = ""
        self.delayed = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> AwsApart:
        path = os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))
        self._process = subprocess.Popen(  # noqa: S603  # our own interpreter and module
            [sys.executable, "-m", "bench.aws_apart", repr(self.delay_seconds)],
            cwd=_ROOT,
            env={**os.environ, "PYTHONPATH": path},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._stop()
            raise RuntimeError("the process serving moto and the delay proxy did not start")
        urls = json.loads(line)
        self.direct, self.delayed = str(urls["direct"]), str(urls["delayed"])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def main(argv: list[str]) -> int:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        direct = f"http://{host}:{port}"
        with DelayProxy(direct, float(argv[0])) as proxy:
            print(json.dumps({"direct": direct, "delayed": proxy.url}), flush=True)
            sys.stdin.read()  # until the bench closes it
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
