"""Random schedules of the dynamodb backend's chunk objects on moto: batches mixing several
files' chunks (duplicates and other bytes among them) stored by several containers, each
file closed when complete, by a closer that read its parts (as assembly does) or did not (as
a redrive or the expiry does). The adapters, not a model of them, decide every deletion.

What must hold: no object a collecting file names is ever gone (checked after every step),
and once every file is closed no object is left.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.chunk_objects import OBJECTS, S3ChunkObjects, object_key
from adapters.dynamodb_state import DynamoDbFileStateStore
from domain import Chunk, FileId, FileState, FileStatus, PartitionArrival
from tests.integration.builders import BUCKET, chunk
from tests.integration.state_steps import NOW, ROOM, TTL, make_state_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

ENDPOINTS = [f"https://uploads.example.com/f{n}.bin?X-Amz-Signature=SECRET-{n}" for n in range(4)]


def stream(rng: random.Random) -> list[Chunk]:
    """Three or four files of 2 to 5 partitions, interleaved; some chunks sent again, some
    with other bytes."""
    files = []
    for endpoint in ENDPOINTS[: rng.randrange(3, 5)]:
        count = rng.randrange(2, 6)
        content = [f"{endpoint[-1]}{p}".encode() * 40 for p in range(count)]
        files.append([chunk(endpoint, p, count, c) for p, c in enumerate(content)])
    records: list[Chunk] = []
    while any(files):
        source = rng.choice([f for f in files if f])
        records.append(source.pop(rng.randrange(min(2, len(source)))))
    for _ in range(rng.randrange(0, 5)):
        again = rng.choice(records)
        if rng.random() < 0.3:
            again = chunk(again.put_endpoint, again.partition, again.partition_count, b"other")
        records.insert(rng.randrange(len(records) + 1), again)
    return records


class Containers:
    def __init__(self, s3: S3Client, dynamodb: DynamoDBClient, table: str) -> None:
        self._s3, self._db, self._table = s3, dynamodb, table
        self.state = DynamoDbFileStateStore(dynamodb, table, ttl_seconds=TTL)

    def objects(self) -> S3ChunkObjects:
        """A container's chunk objects: its own caches of indexes and places."""
        return S3ChunkObjects(self._s3, BUCKET, self._db, self._table, TTL, read_ahead=8)


def left(s3: S3Client) -> set[str]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=OBJECTS)
    return {item["Key"] for item in listing.get("Contents", [])}


@settings(
    max_examples=max(8, settings().max_examples // 4),  # ~1 s each on moto
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_no_object_a_collecting_file_names_is_deleted_and_none_outlives_the_last_close(
    s3_client: S3Client, dynamodb: DynamoDBClient, seed: int
) -> None:
    rng = random.Random(seed)
    table = make_state_table(dynamodb)
    world = Containers(s3_client, dynamodb, table)
    state = world.state
    containers = [world.objects() for _ in range(rng.randrange(1, 4))]
    pending = stream(rng)
    files = {record.file_id for record in pending}
    closed: set[FileId] = set()
    with_parts = without_parts = 0
    for key in left(s3_client):  # what a failing example before this one left (shrinking)
        s3_client.delete_object(Bucket=BUCKET, Key=key)
    while pending:
        size = rng.randrange(1, 6)
        batch, pending = pending[:size], pending[size:]
        objects = rng.choice(containers)
        object_id = objects.store(batch)
        admitted: set[FileId] = set()
        complete: list[Chunk] = []
        for record in dict.fromkeys(batch):  # the same record twice in a batch: counted once
            arrival = PartitionArrival(
                record.put_endpoint, record.partition, record.partition_count, record.ref, ROOM, NOW
            )
            answer = state.add_stored(arrival, object_id)
            if isinstance(answer, FileState):
                continue
            admitted.add(record.file_id)
            if answer == record.partition_count:
                complete.append(record)
        unneeded = {r.file_id for r in batch} - admitted
        if unneeded:
            objects.unneeded(object_id, unneeded)
        for record in complete:
            closer = rng.choice(containers)
            assert state.claim(record.file_id, "owner", NOW, NOW + 60).won
            stored = state.stored(record.file_id)
            if rng.random() < 0.7:  # as assembly does: the indexes are read
                assert closer.parts(record.file_id, record.partition_count, stored) is not None
                with_parts += 1
            else:
                without_parts += 1
            assert state.finish(record.file_id, "owner", FileStatus.UPLOADED, NOW)
            closer.release(record.file_id, {where for _, where in stored.values()})
            closed.add(record.file_id)
        there = left(s3_client)
        for file_id in files - closed:
            for _, where in state.stored(file_id).values():
                assert object_key(where) in there, "an object a collecting file names is gone"

    assert left(s3_client) == set(), "every file is closed, yet objects are left"
    event(f"closers that read the parts: {'some' if with_parts else 'none'}")
    event(f"closers that did not: {'some' if without_parts else 'none'}")
