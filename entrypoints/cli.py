"""The ``sfb`` command line: one clear line and a non-zero exit on any error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from entrypoints.events import BATCH_SIZE
from entrypoints.provision import RedisNotReady

if TYPE_CHECKING:
    from entrypoints.container import Container


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="sfb", description="streaming-file-builder: reassemble files from Kinesis chunks"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the main job end to end on embedded services")
    demo.add_argument("--size", type=int, default=6 * 1024 * 1024 + 12345, help="file bytes")
    demo.add_argument("--chunk-size", type=int, default=256 * 1024, help="bytes per chunk")

    split = commands.add_parser("split", help="print a file's chunk payloads as JSON lines")
    split.add_argument("file", type=Path)
    split.add_argument("--put-endpoint", required=True, help="where the file will be PUT")
    split.add_argument("--chunk-size", type=int, default=512 * 1024, help="bytes per chunk")

    publish = commands.add_parser(
        "publish", help="put a file's chunks on a Kinesis stream (batched PutRecords)"
    )
    publish.add_argument("file", type=Path)
    publish.add_argument("--stream", required=True, help="the Kinesis stream's name")
    publish.add_argument("--put-endpoint", required=True, help="where the file will be PUT")
    publish.add_argument("--chunk-size", type=int, default=512 * 1024, help="bytes per chunk")
    publish.add_argument(
        "--spread", action="store_true", help="scatter a file's chunks over shards (dynamodb)"
    )

    consume = commands.add_parser(
        "consume",
        help="read every shard of a stream and feed the handler, as Lambda would",
        description="One container per shard, settings from the environment; a batch with "
        "batchItemFailures is read again from the lowest reported sequence number.",
    )
    consume.add_argument("--stream", required=True, help="the Kinesis stream's name")
    consume.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"records an invocation at most (default {BATCH_SIZE}, as the template's "
        "BatchSize); an invocation also ends before its event passes 6 MB, as Lambda's does",
    )

    commands.add_parser(
        "provision",
        help="create the S3_BUCKET and, for the dynamodb backend, the STATE_TABLE with its "
        "index of open files and TTL",
        description="Create what the settings in the environment name, where AWS_ENDPOINT_URL "
        "(or the default AWS endpoints) point. Idempotent.",
    )

    status = commands.add_parser(
        "status",
        help="list files not finished, how far each got, when it expires, what to do next",
        description="Reads the settings from the environment, like the Lambda does.",
    )
    status.add_argument(
        "--json", action="store_true", help="print a JSON list for scripts instead of the table"
    )
    redrive = commands.add_parser(
        "redrive",
        help="upload again a failed file, or finish a complete one that never was",
        description="Reads the settings from the environment, like the Lambda does.",
    )
    target = redrive.add_mutually_exclusive_group(required=True)
    target.add_argument("file_id", nargs="?", help="the file id shown by sfb status")
    target.add_argument("--all-failed", action="store_true", help="every file kept as failed")
    expire = commands.add_parser(
        "expire",
        help="give up files still incomplete INCOMPLETE_FILE_TTL_SECONDS after their first chunk",
        description="What the scheduled expire handler does, once, now: each file still "
        "missing partitions that long after its first chunk has its chunks deleted, a record "
        "kept as expired/<file-id>.json and an ERROR line logged. Complete files are kept (sfb "
        "redrive finishes them). Reads the settings from the environment, like the Lambda does.",
    )
    expire.add_argument(
        "--dry-run", action="store_true", help="list what would be given up; change nothing"
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "provision":
            return _provision()
        if args.command == "publish":
            return _publish(args.file, args.stream, args.put_endpoint, args.chunk_size, args.spread)
        if args.command == "consume":
            return _consume(args.stream, args.batch_size)
        if args.command == "status":
            return _status(args.json)
        if args.command == "redrive":
            return _redrive(args.file_id, args.all_failed)
        if args.command == "expire":
            return _expire(args.dry_run)
        if args.command == "demo":
            from entrypoints.demo import run_demo

            return 0 if run_demo(size=args.size, chunk_size=args.chunk_size) else 1
        from entrypoints.events import split_payloads

        for payload in split_payloads(args.file.read_bytes(), args.put_endpoint, args.chunk_size):
            sys.stdout.write(json.dumps(payload) + "\n")
        return 0
    except (OSError, ValueError, BotoCoreError, ClientError, RedisError, RedisNotReady) as error:
        print(f"sfb {args.command}: {error}", file=sys.stderr)
        return 2


def _operator_container() -> Container:
    import os

    from entrypoints.container import build_container

    return build_container(os.environ)


def _status(as_json: bool) -> int:
    import time

    from entrypoints.status_view import status_document, status_rows, status_text

    container = _operator_container()
    ttl = container.settings().incomplete_file_ttl_seconds
    rows = status_rows(container.file_report()(), time.time(), ttl)
    if as_json:
        sys.stdout.write(json.dumps(status_document(rows), indent=2) + "\n")
    else:
        sys.stdout.write(status_text(rows))
    return 0


def _redrive(file_id: str | None, all_failed: bool) -> int:
    from application.outcomes import FileOutcome
    from domain import FileId

    redrive = _operator_container().redrive()
    if all_failed:
        results = redrive.all_failed()
    else:
        target = FileId(file_id or "")
        results = {target: redrive(target)}
    for target, result in results.items():
        print(f"{target}: {result.value}")
    return 0 if all(r is FileOutcome.UPLOADED for r in results.values()) else 1


def _expire(dry_run: bool) -> int:
    """Publishes no metric: the scheduled handler's EMF lines are what CloudWatch reads."""
    from application.metrics import NoMetrics
    from domain import redact

    run = _operator_container().expire_incomplete(metrics=NoMetrics())(dry_run=dry_run)
    print(f"{'FILE ID':32}  {'RECEIVED':>11}  {'BYTES':>12}  {'AGE':>8}  ENDPOINT")
    for file in run.expired:
        received = f"{file.received}/{file.partition_count}"
        age = f"{file.age(run.now) / 3600:.1f}h"
        endpoint = redact(file.put_endpoint) if file.put_endpoint else "-"
        print(f"{file.file_id!s:32}  {received:>11}  {file.size:>12}  {age:>8}  {endpoint}")
    done = "would be given up" if dry_run else "given up"
    print(
        f"{len(run.expired)} of {run.incomplete} incomplete file(s) {done}"
        + (f"; {len(run.failed)} could not be, see the log" if run.failed else "")
    )
    return 1 if run.failed else 0


def _publish(file: Path, stream: str, put_endpoint: str, chunk_size: int, spread: bool) -> int:
    import boto3

    from domain import Endpoint, InvalidEndpoint
    from entrypoints.events import split_payloads
    from entrypoints.streams import Progress, check_chunk_size, publish

    data = file.read_bytes()
    try:
        Endpoint.parse(put_endpoint)  # the service would quarantine every chunk
    except InvalidEndpoint as invalid:
        raise ValueError(f"--put-endpoint: {invalid.detail}") from None
    if chunk_size < 1:
        raise ValueError("--chunk-size must be at least 1 byte")
    check_chunk_size(len(data), put_endpoint, chunk_size, spread)  # before anything is sent
    payloads = list(split_payloads(data, put_endpoint, chunk_size))
    progress = Progress("publish", len(payloads))
    put = publish(boto3.client("kinesis"), stream, payloads, spread=spread, progress=progress)
    progress.close()
    print(f"{put} records put on {stream}")
    return 0


def _consume(stream: str, batch_size: int) -> int:
    import os
    from collections.abc import Mapping
    from typing import Any

    import boto3

    from entrypoints.container import build_container
    from entrypoints.lambda_handler import handle
    from entrypoints.streams import Invoke, Progress, consume

    base = build_container(os.environ).settings()

    def container_for(shard_id: str) -> Invoke:
        container = build_container({**os.environ, "TMP_DIR": str(base.tmp_dir / shard_id)})

        def invoke(event: Mapping[str, Any]) -> Mapping[str, Any]:
            return handle(container, event, None)

        return invoke

    progress = Progress("consume", None)
    report = consume(boto3.client("kinesis"), stream, container_for, batch_size, progress=progress)
    progress.close()
    print(
        f"{report.batches} batches, {report.records} records read "
        f"({report.redelivered} again after batch failures) from {len(report.shards)} shards"
    )
    return 0


def _provision() -> int:
    import os

    import boto3

    from adapters.settings import BackendName
    from entrypoints.container import load_settings
    from entrypoints.provision import provision

    settings = load_settings(os.environ)
    dynamodb = boto3.client("dynamodb") if settings.state_backend is BackendName.DYNAMODB else None
    redis = None
    if settings.state_backend is BackendName.REDIS and settings.redis_url is not None:
        from adapters.redis_client import redis_client

        redis = redis_client(settings.redis_url, settings.deadline_margin_seconds, connections=1)
    provision(settings, boto3.client("s3"), dynamodb, redis=redis)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
