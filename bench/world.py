"""One benchmark's world: AWS emulated on 127.0.0.1, a receiver, a scratch directory.

moto's server runs in this process (entrypoints.demo.local_aws), so its work shares the
interpreter with the handler's, as a client library's would; the receiver keeps no bodies.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import boto3
from attrs import define, field

from adapters.settings import BackendName
from bench.workload import FileSpec, Sequencer
from entrypoints.container import Container, build_container, load_settings
from entrypoints.demo import local_aws
from entrypoints.provision import provision
from tests.tools.receiver import LocalReceiver, ReceivedPut

BUCKET = "sfb-bench"
TABLE = "sfb-bench-state"
SIGNATURE = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=bench0123456789"


class BenchError(RuntimeError):
    """The service did not do what the benchmark measures: its figures would mean nothing."""


class TimedReceiver(LocalReceiver):
    """A LocalReceiver that keeps no bodies and finds the latest upload to a path."""

    def __init__(self) -> None:
        super().__init__(keep_bodies=False)

    def finished_at(self, path: str) -> float:
        put = self.upload(path)
        if put is None:
            raise BenchError(f"nothing was uploaded to {path.split('?')[0]}")
        return put.finished_at

    def upload(self, path: str) -> ReceivedPut | None:
        """The latest PUT received at ``path`` (query string included), if any."""
        return next((put for put in reversed(self.received) if put.path == path), None)


@define
class World:
    receiver: TimedReceiver
    root: Path
    sequence: Sequencer = field(factory=Sequencer)
    _names: Iterator[int] = field(factory=itertools.count)

    def endpoint(self, *parts: object) -> str:
        """A presigned-looking putEndpoint on the receiver, unique to this world."""
        path = "/".join(str(part) for part in (*parts, next(self._names)))
        return self.receiver.url(f"/{path}?{SIGNATURE}")

    def settings(self, backend: BackendName = BackendName.LOCAL) -> dict[str, str]:
        settings = {
            "S3_BUCKET": BUCKET,
            "TMP_DIR": str(self.root / f"container-{next(self._names)}"),
            "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
            # Per-file INFO lines would go to stdout, through the table.
            "LOG_LEVEL": "WARNING",
        }
        if backend is BackendName.DYNAMODB:
            settings |= {"STATE_BACKEND": backend.value, "STATE_TABLE": TABLE}
        return settings

    def container(self, backend: BackendName = BackendName.LOCAL) -> Container:
        """A fresh warm container: its own cache and its own TMP_DIR."""
        return build_container(self.settings(backend))

    def scratch(self, name: str) -> Path:
        path = self.root / "scratch" / f"{name}-{next(self._names)}"
        path.mkdir(parents=True)
        return path

    def check_upload(self, spec: FileSpec, sha256: str) -> None:
        put = self.receiver.upload(spec.path)
        if put is None:
            raise BenchError(f"nothing was uploaded to {spec.path.split('?')[0]}")
        if put.size != spec.size or put.sha256 != sha256:
            raise BenchError(
                f"{spec.path.split('?')[0]}: received {put.size} bytes, sha256 {put.sha256}; "
                f"sent {spec.size} bytes, sha256 {sha256}"
            )


@contextmanager
def open_world() -> Iterator[World]:
    """Start moto and the receiver, make the bucket and the state table; stop them after."""
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfb-bench-")))
        stack.enter_context(local_aws())
        receiver = TimedReceiver()
        stack.enter_context(receiver)
        world = World(receiver, root)
        provision(
            load_settings(world.settings(BackendName.DYNAMODB)),
            boto3.client("s3"),
            boto3.client("dynamodb"),
            say=lambda _: None,
        )
        yield world
