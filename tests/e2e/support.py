"""What the end-to-end tests share: files cut into chunks, Kinesis records, one test's world."""

from __future__ import annotations

import hashlib
import io
import json
import random
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from entrypoints.container import Container, build_container
from entrypoints.events import kinesis_event, split_payloads
from entrypoints.lambda_handler import BatchResponse, handle
from tests.tools.receiver import LocalReceiver, ReceivedPut
from tests.tools.sequencer import Record as Record
from tests.tools.sequencer import Sequencer as Sequencer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SECRET = "SECRETSIG0123456789abcdef"
"""The presigned part of every putEndpoint: it may never reach a log line."""


@dataclass(frozen=True)
class LambdaContext:
    """The attributes of Lambda's context object the service may read."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "streaming-file-builder"
    memory_limit_in_mb: int = 512


@dataclass(frozen=True)
class SourceFile:
    """A file as its producer cuts it: the bytes, where they go, one payload per partition."""

    data: bytes
    endpoint: str
    payloads: tuple[dict[str, Any], ...]

    @property
    def path(self) -> str:
        """The request path the receiver records, query string included."""
        parts = urlsplit(self.endpoint)
        return f"{parts.path}?{parts.query}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def partition_count(self) -> int:
        return len(self.payloads)

    def payload(self, partition: int, /, **changes: Any) -> dict[str, Any]:
        """The payload of one partition, with fields replaced as a faulty producer might."""
        return {**self.payloads[partition], **changes}


SESSION_TOKEN = "&X-Amz-Security-Token=" + "T" * 1200
"""What a role's credentials add to a presigned URL: it makes the endpoint about 1.5 KB."""


def make_file(
    receiver: LocalReceiver,
    name: str,
    size: int,
    chunk_size: int,
    seed: int = 0,
    token: str = "",
) -> SourceFile:
    data = random.Random(f"{name}/{seed}").randbytes(size)
    endpoint = receiver.url(
        f"/uploads/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256{token}&X-Amz-Signature={SECRET}"
    )
    return SourceFile(data, endpoint, tuple(split_payloads(data, endpoint, chunk_size)))


def interleave(
    sources: Sequence[SourceFile], rng: random.Random, duplicates: float
) -> list[dict[str, Any]]:
    """The files' chunks mixed along one shard, each file's in random order, some sent twice."""
    queues = [rng.sample(s.payloads, k=len(s.payloads)) for s in sources]
    stream: list[dict[str, Any]] = []
    while any(queues):
        payload = rng.choice([q for q in queues if q]).pop()
        stream.append(payload)
        if rng.random() < duplicates:
            stream.append(payload)
    return stream


def sequence_numbers(records: Iterable[Record]) -> list[str]:
    return [str(r["kinesis"]["sequenceNumber"]) for r in records]


def failures(response: BatchResponse) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class S3Requests:
    """Counts the S3 API calls a container's client makes (retries are not counted twice)."""

    def __init__(self, container: Container) -> None:
        self.operations: list[str] = []
        client: S3Client = container.s3_client()
        client.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.operations.append(str(model.name))


class LogLines:
    """The JSON lines the service's log handler wrote during one test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines_with(self, *needles: str) -> list[str]:
        """Raw lines holding every needle: for checks that must not depend on valid JSON."""
        return [line for line in self.text.splitlines() if all(n in line for n in needles)]

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def at(self, level: str) -> list[dict[str, Any]]:
        return [e for e in self.entries() if e.get("level") == level]


@dataclass
class Stack:
    """One test's world: its own bucket on the shared moto server and its own receiver."""

    aws_endpoint: str
    bucket: str
    s3: S3Client
    receiver: LocalReceiver
    root: Path
    seq: Sequencer = field(default_factory=Sequencer)

    def settings(self, name: str, **extra: str) -> dict[str, str]:
        """Settings for one container: each has its own TMP_DIR, as each Lambda has its /tmp."""
        return {
            "S3_BUCKET": self.bucket,
            "TMP_DIR": str(self.root / name),
            "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "INFO",
            **extra,
        }

    def container(self, name: str, **extra: str) -> Container:
        return build_container(self.settings(name, **extra))

    def invoke(self, container: Container, records: Sequence[Record]) -> BatchResponse:
        return handle(container, kinesis_event(records), LambdaContext())

    def file(
        self, name: str, size: int, chunk_size: int, seed: int = 0, token: str = ""
    ) -> SourceFile:
        return make_file(self.receiver, name, size, chunk_size, seed, token)

    def keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def read(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def metadata(self, key: str) -> dict[str, str]:
        return dict(self.s3.head_object(Bucket=self.bucket, Key=key)["Metadata"])

    def uploads_of(self, source: SourceFile) -> list[ReceivedPut]:
        return [put for put in self.receiver.received if put.path == source.path]
