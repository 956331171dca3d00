"""One benchmark's world: AWS emulated on 127.0.0.1, a receiver, a scratch directory.

moto's server runs in this process (entrypoints.demo.local_aws) for the sections that compare
the handler with baselines on the same emulator; the receiver keeps no bodies. The realistic
section, which bills the handler's seconds, reaches a second moto (S3, Kinesis) and dynalite
(DynamoDB), each in a process of its own behind a delay proxy (bench/aws_apart.py), so the
emulators' CPU is never counted as the handler's, and uploads small files to a receiver that
answers each PUT late, as S3 does.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import boto3
from attrs import define, field
from dependency_injector import providers

from adapters.emf_metrics import EmfMetrics
from adapters.settings import BackendName
from application.metrics import NoMetrics
from application.ports import Metrics
from bench.aws_apart import AwsApart
from bench.workload import FileSpec, Sequencer
from entrypoints.container import Container, aws_client_config, build_container, load_settings
from entrypoints.demo import local_aws
from entrypoints.provision import provision
from tests.e2e.dynalite import create_state_table
from tests.tools.receiver import LocalReceiver, ReceivedPut
from tests.tools.redis_server import running_redis

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

BUCKET = "sfb-bench"
TABLE = "sfb-bench-state"
SIGNATURE = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=bench0123456789"
SESSION_SIGNATURE = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAEXAMPLEEXAMPLE00%2F20261126%2F"
    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261126T120000Z&X-Amz-Expires=3600"
    "&X-Amz-SignedHeaders=host&X-Amz-Security-Token=" + "T" * 1200 + "&X-Amz-Signature=" + "0" * 64
)
"""The query string of a URL presigned with a role's credentials (as a Lambda or an ECS task
presigns): the session token makes it about 1.5 KB."""
AWS_DELAY_SECONDS = 0.020
"""Added to every AWS request of the realistic section: a round trip to S3 or DynamoDB."""
PUT_ANSWER_SECONDS = 0.030
"""How long the small-files receiver takes to answer a PUT once it has the body."""


class BenchError(RuntimeError):
    """The service did not do what the benchmark measures: its figures would mean nothing."""


class Receiver(Protocol):
    """Where the bench's files are uploaded, in this process or in AwsApart's."""

    def url(self, path: str) -> str: ...

    def upload(self, path: str) -> ReceivedPut | None: ...

    def finished_at(self, path: str) -> float: ...


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


class SlowReceiver(TimedReceiver):
    """Answers each PUT ``answer_seconds`` after its last byte, as S3 takes to store it."""

    def __init__(self, answer_seconds: float = PUT_ANSWER_SECONDS) -> None:
        super().__init__()
        self.answer_seconds = answer_seconds

    def _record(self, put: ReceivedPut) -> None:
        super()._record(put)
        time.sleep(self.answer_seconds)


@define
class World:
    receiver: TimedReceiver
    root: Path
    aws: AwsApart
    """The realistic section's AWS and receivers: moto and dynalite in other processes, behind
    a fixed delay, and receivers beside them."""
    redis_url: str
    """A redis-server on 127.0.0.1, reached directly: its round trips are sub-millisecond
    beside a Lambda, as an ElastiCache node's are, so no delay is added."""
    sequence: Sequencer = field(factory=Sequencer)
    _names: Iterator[int] = field(factory=itertools.count)
    log_level: str = "WARNING"
    """The containers' LOG_LEVEL: per-file INFO lines would go to stdout, through the table."""
    metrics: Callable[[], Metrics] = NoMetrics
    """Each delayed container's metrics: none by default, so no EMF line goes in the table."""

    @property
    def slow_receiver(self) -> Receiver:
        """Answers each PUT PUT_ANSWER_SECONDS after its last byte (the small files')."""
        return self.aws.slow_receiver

    def endpoint(
        self, *parts: object, receiver: Receiver | None = None, signature: str = SIGNATURE
    ) -> str:
        """A presigned-looking putEndpoint on the receiver, unique to this world."""
        # A fixed width: the same files at new endpoints make items of the same sizes.
        path = "/".join(str(part) for part in (*parts, f"{next(self._names):06d}"))
        return (receiver or self.receiver).url(f"/{path}?{signature}")

    def settings(self, backend: BackendName = BackendName.LOCAL) -> dict[str, str]:
        settings = {
            "S3_BUCKET": BUCKET,
            "TMP_DIR": str(self.root / f"container-{next(self._names)}"),
            "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": self.log_level,
        }
        if backend is BackendName.DYNAMODB:
            settings |= {"STATE_BACKEND": backend.value, "STATE_TABLE": TABLE}
        if backend is BackendName.REDIS:
            settings |= {"STATE_BACKEND": backend.value, "REDIS_URL": self.redis_url}
        return settings

    def container(self, backend: BackendName = BackendName.LOCAL) -> Container:
        """A fresh warm container: its own cache and its own TMP_DIR. Its EMF documents are
        made as in production, and dropped: on stdout they would go through the report."""
        container = build_container(self.settings(backend))
        container.metrics.override(providers.Singleton(EmfMetrics, write=_discard))
        return container

    def delayed_container(self, backend: BackendName = BackendName.LOCAL) -> Container:
        """A fresh warm container whose S3, DynamoDB and Kinesis are reached through the delay
        proxies (DynamoDB's in front of dynalite, the others' in front of moto).

        The clients are the container's own, with the same config, only their endpoint
        changed; the other sections' containers keep moto's address from the environment.
        Kinesis' (a new shard's lookup of its parents) is made when first asked, as the
        container makes it.
        """
        container = self.container(backend)
        config = container.aws_config()
        url = self.aws.delayed
        container.s3_client.override(boto3.client("s3", endpoint_url=url, config=config))
        container.dynamodb_client.override(
            boto3.client("dynamodb", endpoint_url=self.aws.delayed_dynamodb, config=config)
        )
        container.kinesis_client.override(
            providers.Singleton(boto3.client, "kinesis", endpoint_url=url, config=config)
        )
        container.metrics.override(providers.Object(self.metrics()))
        return container

    def delayed_s3(self) -> S3Client:
        """An S3 client of the bench's own through the proxy: the floor reads with it."""
        return boto3.client("s3", endpoint_url=self.aws.delayed, config=aws_client_config(10.0))

    def apart_s3(self) -> S3Client:
        """The realistic section's S3 with no delay, for the bench's own uncounted work."""
        return boto3.client("s3", endpoint_url=self.aws.direct)

    def apart_dynamodb(self) -> DynamoDBClient:
        """The realistic section's DynamoDB with no delay (the capacity reader's)."""
        return boto3.client("dynamodb", endpoint_url=self.aws.direct_dynamodb)

    def scratch(self, name: str) -> Path:
        path = self.root / "scratch" / f"{name}-{next(self._names)}"
        path.mkdir(parents=True)
        return path

    def check_upload(self, spec: FileSpec, sha256: str, receiver: Receiver | None = None) -> None:
        put = (receiver or self.receiver).upload(spec.path)
        if put is None:
            raise BenchError(f"nothing was uploaded to {spec.path.split('?')[0]}")
        if put.size != spec.size or put.sha256 != sha256:
            raise BenchError(
                f"{spec.path.split('?')[0]}: received {put.size} bytes, sha256 {put.sha256}; "
                f"sent {spec.size} bytes, sha256 {sha256}"
            )


@contextmanager
def open_world() -> Iterator[World]:
    """Start moto, dynalite and the receivers, make the buckets and the state tables; stop them
    after."""
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfb-bench-")))
        stack.enter_context(local_aws())
        receiver = TimedReceiver()
        stack.enter_context(receiver)
        aws = stack.enter_context(AwsApart(AWS_DELAY_SECONDS, PUT_ANSWER_SECONDS))
        redis_url = stack.enter_context(running_redis())
        world = World(receiver, root, aws, redis_url)
        settings = load_settings(world.settings(BackendName.DYNAMODB))
        provision(settings, boto3.client("s3"), boto3.client("dynamodb"), say=lambda _: None)
        provision(settings, world.apart_s3(), None, say=lambda _: None)
        create_state_table(world.apart_dynamodb(), TABLE)
        yield world


def _discard(_: str) -> None:
    pass
