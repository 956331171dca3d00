"""Does a chunk cost more DynamoDB write units the larger its file? A probe of the dynamodb
backend's state store alone, against moto, with files of many tiny chunks.

DynamoDB bills a write by the size of the item it changes (1 KB a unit, rounded up, the larger
of before and after), so a store whose item grows with the file pays about N²/90 units for a
file of N chunks: twice as many units a chunk for twice the chunks. Units are computed from
the items' sizes as DynamoDB defines them (realistic.Accounting: moto reports a flat 1).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import boto3
from attrs import frozen

from adapters.dynamodb_state import TABLE_DEFINITION, DynamoDbFileStateStore
from bench.realistic import Accounting
from domain import ChunkRef, PartitionArrival

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CHUNKS = (2_000, 4_000)
ENDPOINT = "https://bench-bucket.s3.amazonaws.com/probe/{}.bin?X-Amz-Signature=probe"
MAX_FILE_BYTES = 5 * 1024**3


@frozen
class WriteUnitsRow:
    chunks: int
    write_units: float
    requests: dict[str, int]
    seconds: float

    @property
    def per_chunk(self) -> float:
        return self.write_units / self.chunks


def probe(client: DynamoDBClient, chunks: int) -> WriteUnitsRow:
    """One file of ``chunks`` one-byte partitions, in order, on a fresh table."""
    table = f"sfb-write-units-{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=table, **TABLE_DEFINITION)
    try:
        accounting = Accounting(_twin(client))
        counted = _twin(client)
        accounting.attach_dynamodb(counted)
        store = DynamoDbFileStateStore(counted, table, ttl_seconds=86_400.0)
        endpoint = ENDPOINT.format(uuid.uuid4().hex)
        started = time.perf_counter()
        for partition in range(chunks):
            digest = hashlib.sha256(partition.to_bytes(4, "big")).hexdigest()
            added = store.add_chunk(
                PartitionArrival(
                    endpoint, partition, chunks, ChunkRef(digest, 1), MAX_FILE_BYTES, 0.0
                )
            )
            if not isinstance(added, int):
                raise RuntimeError(f"the probe's partition {partition} was refused: {added}")
        seconds = time.perf_counter() - started - accounting.paused
        return WriteUnitsRow(chunks, accounting.write_units, dict(accounting.requests), seconds)
    finally:
        client.delete_table(TableName=table)


def _twin(client: DynamoDBClient) -> DynamoDBClient:
    """Another client of the same DynamoDB: the store's is counted, the reader's is not."""
    return boto3.client(
        "dynamodb", endpoint_url=client.meta.endpoint_url, region_name=client.meta.region_name
    )


def run(
    client: DynamoDBClient | None = None, chunks: tuple[int, ...] = CHUNKS
) -> tuple[WriteUnitsRow, ...]:
    db = client or boto3.client("dynamodb")
    return tuple(probe(db, n) for n in chunks)


def describe(rows: tuple[WriteUnitsRow, ...]) -> str:
    """One line: units a chunk for each file, and how much more a chunk costs in the largest."""
    parts = [
        f"{row.chunks:,} chunks: {row.per_chunk:.2f} write units a chunk "
        f"({row.requests.get('dynamodb.UpdateItem', 0) / row.chunks:.2f} UpdateItem)"
        for row in rows
    ]
    ratio = rows[-1].per_chunk / rows[0].per_chunk
    return f"dynamodb state, one file of tiny chunks: {'; '.join(parts)}; ratio {ratio:.2f}"


def main(say: Callable[[str], None] = print) -> None:
    """``python -m bench.write_units``: the probe on moto in this process."""
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    with mock_aws():
        say(describe(run(boto3.client("dynamodb", region_name="us-east-1"))))


if __name__ == "__main__":
    main()
