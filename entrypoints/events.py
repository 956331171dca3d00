"""Chunk payloads and Kinesis-shaped Lambda events, as producers and Lambda make them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

STREAM_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/sfb-demo"


def split_payloads(data: bytes, put_endpoint: str, chunk_size: int) -> Iterator[dict[str, Any]]:
    """The producer's side: one payload per partition, content base64-encoded."""
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1 byte")
    count = max(1, -(-len(data) // chunk_size))
    for partition in range(count):
        piece = data[partition * chunk_size : (partition + 1) * chunk_size]
        yield {
            "putEndpoint": put_endpoint,
            "partition": partition,
            "partitionCount": count,
            "content": base64.b64encode(piece).decode("ascii"),
        }


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def kinesis_record(
    data: bytes,
    sequence_number: str,
    partition_key: str = "pk",
    shard_id: str = "shardId-000000000000",
    stream_arn: str = STREAM_ARN,
) -> dict[str, Any]:
    """One element of a Kinesis event's Records, byte for byte as Lambda delivers it."""
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": sequence_number,
            "data": base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": time.time(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{sequence_number}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/sfb-demo",
        "awsRegion": "us-east-1",
        "eventSourceARN": stream_arn,
    }


def kinesis_event(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


BATCH_SIZE = 100
"""Records an invocation at most: the template's default BatchSize, and Lambda's own."""
INVOCATION_PAYLOAD_LIMIT = 6_000_000
"""Lambda's cap on an invocation's payload: the event source mapping stops a batch before
its event passes it, whatever BatchSize allows (about four 700 KiB chunks)."""


def fitting(records: Sequence[dict[str, Any]], limit: int = INVOCATION_PAYLOAD_LIMIT) -> int:
    """How many of ``records``, from the first, one event of at most ``limit`` bytes of JSON
    holds: at least one, as Lambda never leaves a record behind for its size alone."""
    size = len(json.dumps(kinesis_event([])))
    for count, made in enumerate(records):
        size += len(json.dumps(made)) + (2 if count else 0)
        if size > limit:
            return max(1, count)
    return len(records)


def sequence_number(n: int) -> str:
    """Kinesis sequence numbers are long decimal strings that grow along a shard."""
    return f"4959{n:052d}"
