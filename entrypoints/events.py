"""Chunk payloads and Kinesis-shaped Lambda events, as producers and Lambda make them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

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


def cut(
    items: Iterable[T],
    record_of: Callable[[T], dict[str, Any]],
    batch_size: int = BATCH_SIZE,
    limit: int = INVOCATION_PAYLOAD_LIMIT,
) -> Iterator[tuple[list[T], int]]:
    """A shard's records cut into events as Lambda cuts them, each with its bytes of JSON: at
    most ``batch_size`` records, and none past ``limit`` bytes but a record alone, which
    Lambda never leaves behind for its size. Lazy: a record is sized as it comes."""
    empty = len(json.dumps(kinesis_event([])))
    batch: list[T] = []
    size = empty
    for item in items:
        length = len(json.dumps(record_of(item)))
        if batch and (size + 2 + length > limit or len(batch) == batch_size):
            yield batch, size
            batch, size = [], empty
        size += length + (2 if batch else 0)
        batch.append(item)
    if batch:
        yield batch, size


def fitting(records: Sequence[dict[str, Any]], limit: int = INVOCATION_PAYLOAD_LIMIT) -> int:
    """How many of ``records``, from the first, one event of at most ``limit`` bytes of JSON
    holds (at least one)."""
    first = next(cut(records, lambda made: made, len(records), limit), None)
    return len(first[0]) if first is not None else 0


def sequence_number(n: int) -> str:
    """Kinesis sequence numbers are long decimal strings that grow along a shard."""
    return f"4959{n:052d}"
