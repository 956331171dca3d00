"""The main job on an embedded default: a generated file through the real handler, end to end.

S3 is moto's server on 127.0.0.1 (found by boto3 through AWS_ENDPOINT_URL, as with any
emulator); the upload goes to a local receiver that, like S3, refuses chunked encoding.
Two warm containers alternate on the shard, batches carry duplicates and arrive shuffled.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from entrypoints.container import build_container
from entrypoints.events import (
    encode_payload,
    kinesis_record,
    sequence_number,
    split_payloads,
)
from entrypoints.lambda_handler import handle
from entrypoints.local_receiver import LocalReceiver
from entrypoints.shard_driver import drive_shard

DEMO_BUCKET = "sfb-demo"


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
) -> bool:
    """Return whether the uploaded file's sha256 equals the generated file's."""
    rng = random.Random(seed)
    data = rng.randbytes(size)
    expected = hashlib.sha256(data).hexdigest()
    with (
        local_aws(),
        LocalReceiver(keep_bodies=False) as receiver,
        tempfile.TemporaryDirectory() as tmp,
    ):
        boto3.client("s3").create_bucket(Bucket=DEMO_BUCKET)
        endpoint = receiver.url("/uploads/demo.bin?X-Amz-Signature=demo-secret")
        payloads = list(split_payloads(data, endpoint, chunk_size))
        duplicates = rng.sample(payloads, k=max(1, len(payloads) // 5))
        stream = payloads + duplicates
        rng.shuffle(stream)
        records = [
            kinesis_record(encode_payload(p), sequence_number(i), partition_key="demo.bin")
            for i, p in enumerate(stream)
        ]
        say(
            f"file: {size} bytes, sha256 {expected}\n"
            f"stream: {len(payloads)} chunks of {chunk_size} bytes + {len(duplicates)} "
            f"duplicates, shuffled, in batches of {batch_size}"
        )
        containers = [
            build_container(_settings(Path(tmp) / name)) for name in ("container-a", "container-b")
        ]

        def invoke(number: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
            # Lambda may hand consecutive batches of one shard to different warm containers.
            container = containers[(number // 2) % len(containers)]
            response = handle(container, event, None)
            failures = len(response["batchItemFailures"])
            say(
                f"batch {number + 1:2d}: {len(event['Records'])} records on container "
                f"{'ab'[(number // 2) % 2]}, {failures} to redeliver, "
                f"{len(receiver.received)} file(s) uploaded so far"
            )
            return response

        report = drive_shard(records, invoke, batch_size)
        received = receiver.received
        say(f"{report.invocations} batches, {report.records_sent} records sent")
        if len(received) != 1:
            say(f"FAILED: expected exactly one upload, got {len(received)}")
            return False
        put = received[0]
        ok = put.sha256 == expected and put.size == size and "content-type" not in put.headers
        say(
            f"uploaded: {put.size} bytes to {put.path.split('?')[0]}, sha256 {put.sha256}, "
            f"Content-Type header: {put.headers.get('content-type', 'none')}"
        )
        say("OK: the uploaded file matches" if ok else "FAILED: the uploaded file differs")
        return ok


def _settings(tmp_dir: Path) -> dict[str, str]:
    return {
        "S3_BUCKET": DEMO_BUCKET,
        "TMP_DIR": str(tmp_dir),
        "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }
