"""What the state store tests share: a file, its chunks, and the steps of adding them, typed
against what any shared backend's store is (the hot path's port and the operators' views)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Protocol

from adapters.dynamodb_state import TABLE_DEFINITION
from application.ports import FileStateStore
from application.views import IncompleteFiles, SharedFiles
from domain import DIGEST_PREFIX, ChunkRef, FileId, FileState, IncompleteFile, PartitionArrival
from tests.integration.builders import ref_of

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL = 86_400.0
NOW = 1_700_000_000.0
ROOM = 5 * 1024**3
"""MAX_FILE_BYTES where a test is not about it."""
ENDPOINT = "https://uploads.example.com/a.bin?X-Amz-Signature=s3cr3t"
FILE = FileId.for_endpoint(ENDPOINT)
CUTOFF = NOW + 1
"""A give-up's cutoff (now less INCOMPLETE_FILE_TTL_SECONDS) just after the file began."""
LATER = NOW + 90_000


def make_table_before_the_index(client: DynamoDBClient, name: str) -> None:
    """A state table as `sfb provision` made it before the index of open files."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "file_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "file_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def make_state_table(client: DynamoDBClient) -> str:
    """A state table as `sfb provision` makes it (less TTL), with a name of its own."""
    name = f"sfb-state-{uuid.uuid4().hex[:12]}"
    client.create_table(TableName=name, **TABLE_DEFINITION)
    return name


class StateStore(FileStateStore, SharedFiles, IncompleteFiles, Protocol):
    """A shared backend's store: the hot path's port and the operators' views."""


def content(partition: int, variant: str = "") -> bytes:
    return f"partition {partition} bytes{variant}".encode()


def add(
    store: StateStore,
    partition: int,
    count: int,
    data: bytes | None = None,
    *,
    endpoint: str = ENDPOINT,
    room: int = ROOM,
    now: float = NOW,
) -> int | None:
    added = offer(store, partition, count, data, endpoint=endpoint, room=room, now=now)
    return added if isinstance(added, int) else None


def offer(
    store: StateStore,
    partition: int,
    count: int,
    data: bytes | None = None,
    *,
    endpoint: str = ENDPOINT,
    room: int = ROOM,
    now: float = NOW,
) -> int | FileState:
    """Add a chunk: how many partitions the file holds after it, or the state that refused it."""
    chunk = content(partition) if data is None else data
    return store.add_chunk(
        PartitionArrival(endpoint, partition, count, ref_of(chunk), max_file_bytes=room, now=now)
    )


def complete(store: StateStore, count: int) -> None:
    for partition in range(count):
        assert add(store, partition, count) is not None


def prefix(ref: ChunkRef) -> str:
    return ref.digest[:DIGEST_PREFIX]


def only_incomplete(store: StateStore) -> IncompleteFile:
    [file] = store.incomplete()
    return file
