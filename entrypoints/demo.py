"""The main job on an embedded default: a generated file through a real stream and the real
handler to a presigned S3 URL, end to end, on moto's server (found by boto3 through
AWS_ENDPOINT_URL, as with any emulator)."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import boto3
from dependency_injector import providers

from application.metrics import NoMetrics
from domain import redact
from entrypoints.container import build_container
from entrypoints.events import split_payloads
from entrypoints.lambda_handler import handle
from entrypoints.provision import provision
from entrypoints.streams import Invoke, Progress, consume, publish, shuffled_with_duplicates

DEMO_BUCKET = "sfb-demo"
DEMO_TABLE = "sfb-demo-files"
DEMO_STREAM = "sfb-demo-chunks"
DEMO_KEY = "uploads/demo.bin"


@contextmanager
def local_aws() -> Iterator[str]:
    """moto's server on 127.0.0.1, with this process's AWS settings pointing at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_VARIABLES}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's placeholder
            "AWS_SESSION_TOKEN": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


_AWS_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def run_demo(
    size: int = 6 * 1024 * 1024 + 12345,
    chunk_size: int = 256 * 1024,
    batch_size: int = 7,
    seed: int = 2026,
    say: Callable[[str], None] = print,
    progress_stream: TextIO | None = None,
) -> bool:
    """Return whether the object uploaded to S3 has the generated file's sha256.

    The whole path of a deployment, embedded: moto's server on 127.0.0.1 is S3, DynamoDB and
    Kinesis; the putEndpoint is a presigned S3 PUT URL; the chunks go onto a 4-shard stream,
    shuffled, some twice, and are consumed one container per shard with the dynamodb backend.
    """
    rng = random.Random(seed)
    data = rng.randbytes(size)
    expected = hashlib.sha256(data).hexdigest()
    quiet = io.StringIO() if progress_stream is None and say is not print else progress_stream
    with local_aws(), tempfile.TemporaryDirectory() as tmp:
        settings = _settings(Path(tmp))
        provisioner = build_container(settings)
        provision(
            provisioner.settings(),
            provisioner.s3_client(),
            provisioner.dynamodb_client(),
            say=lambda line: say(f"provision: {line}"),
        )
        s3 = provisioner.s3_client()
        kinesis = boto3.client("kinesis")
        kinesis.create_stream(StreamName=DEMO_STREAM, ShardCount=4)
        kinesis.get_waiter("stream_exists").wait(
            StreamName=DEMO_STREAM, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        endpoint = s3.generate_presigned_url(
            "put_object", Params={"Bucket": DEMO_BUCKET, "Key": DEMO_KEY}, ExpiresIn=3600
        )
        payloads = list(split_payloads(data, endpoint, chunk_size))
        sent = shuffled_with_duplicates(payloads, rng)
        say(
            f"file: {size} bytes, sha256 {expected}\n"
            f"put endpoint: {redact(endpoint)} (presigned S3 PUT)\n"
            f"stream: {DEMO_STREAM}, 4 shards; {len(payloads)} chunks of {chunk_size} bytes "
            f"+ {len(sent) - len(payloads)} duplicates, shuffled, spread over the shards"
        )

        bar = Progress("publish", len(sent), quiet)
        publish(kinesis, DEMO_STREAM, sent, spread=True, progress=bar)
        bar.close()

        def container_for(shard_id: str) -> Invoke:
            container = build_container({**settings, "TMP_DIR": str(Path(tmp) / shard_id)})
            container.metrics.override(providers.Object(NoMetrics()))  # keep the output readable
            return lambda event: handle(container, event, None)

        bar = Progress("consume", len(sent), quiet)
        report = consume(kinesis, DEMO_STREAM, container_for, batch_size, progress=bar)
        bar.close()

        uploaded = s3.get_object(Bucket=DEMO_BUCKET, Key=DEMO_KEY)
        body = uploaded["Body"].read()
        actual = hashlib.sha256(body).hexdigest()
        pending = s3.list_objects_v2(Bucket=DEMO_BUCKET, Prefix="pending/").get("KeyCount", 0)
        ok = actual == expected and len(body) == size
        rows = [
            ("records published", str(len(sent))),
            ("batches consumed", f"{report.batches} ({report.redelivered} records again)"),
            ("records per shard", ", ".join(str(n) for n in report.shards.values())),
            ("object uploaded", f"s3://{DEMO_BUCKET}/{DEMO_KEY}, {len(body)} bytes"),
            ("sha256 uploaded", actual),
            ("pending chunks left", str(pending)),
        ]
        width = max(len(name) for name, _ in rows)
        say("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
        say("OK: the uploaded file matches" if ok else "FAILED: the uploaded file differs")
        return ok


def _settings(tmp_dir: Path) -> dict[str, str]:
    return {
        "S3_BUCKET": DEMO_BUCKET,
        "STATE_BACKEND": "dynamodb",
        "STATE_TABLE": DEMO_TABLE,
        "TMP_DIR": str(tmp_dir),
        "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
