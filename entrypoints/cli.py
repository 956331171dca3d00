"""The ``sfb`` command line: one clear line and a non-zero exit on any error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError


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

    commands.add_parser(
        "provision",
        help="create the S3_BUCKET and, for the dynamodb backend, the STATE_TABLE with TTL",
        description="Create what the settings in the environment name, where AWS_ENDPOINT_URL "
        "(or the default AWS endpoints) point. Idempotent.",
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "provision":
            return _provision()
        if args.command == "demo":
            from entrypoints.demo import run_demo

            return 0 if run_demo(size=args.size, chunk_size=args.chunk_size) else 1
        from entrypoints.events import split_payloads

        for payload in split_payloads(args.file.read_bytes(), args.put_endpoint, args.chunk_size):
            sys.stdout.write(json.dumps(payload) + "\n")
        return 0
    except (OSError, ValueError, BotoCoreError, ClientError) as error:
        print(f"sfb {args.command}: {error}", file=sys.stderr)
        return 2


def _provision() -> int:
    import os

    import boto3

    from adapters.settings import StateBackend
    from entrypoints.container import load_settings
    from entrypoints.provision import provision

    settings = load_settings(os.environ)
    dynamodb = boto3.client("dynamodb") if settings.state_backend is StateBackend.DYNAMODB else None
    provision(settings, boto3.client("s3"), dynamodb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
