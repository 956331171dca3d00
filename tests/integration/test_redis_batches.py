"""The redis backend's batch of files on a real redis-server: which of many files the server
knows (one pipeline), and their tombstones (one pipeline), read as closed files after."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from adapters.redis_chunks import RedisChunkStore
from adapters.redis_state import (
    RedisFileStateBatches,
    RedisFileStateStore,
    chunks_key,
    meta_key,
    state_key,
)
from adapters.s3_storage import S3ChunkStore
from application.tombstones import Tombstone
from domain import FileId, FileState, FileStatus
from tests.integration.builders import BUCKET, chunk
from tests.integration.state_steps import NOW, TTL, add, offer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

OWNER = "owner-of-the-batch"


def endpoint(n: int) -> str:
    return f"https://uploads.example.com/file-{n}.bin?X-Amz-Signature=s3cr3t"


def file_id(n: int) -> FileId:
    return FileId.for_endpoint(endpoint(n))


@pytest.fixture
def server(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
        yield client


def test_unknown_names_only_the_files_the_server_holds_nothing_for(server: redis.Redis) -> None:
    store = RedisFileStateStore(server, ttl_seconds=TTL)
    batches = RedisFileStateBatches(server, ttl_seconds=TTL)
    add(store, 0, 2, endpoint=endpoint(1))
    batches.close([Tombstone(file_id(2), FileStatus.UPLOADED, 1, 10, NOW, OWNER)])

    assert batches.unknown([file_id(n) for n in range(4)]) == {file_id(0), file_id(3)}
    assert batches.unknown([]) == frozenset()


@pytest.mark.parametrize("status", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_a_tombstone_reads_as_a_closed_file_and_refuses_late_chunks(
    server: redis.Redis, status: FileStatus
) -> None:
    store = RedisFileStateStore(server, ttl_seconds=TTL)
    batches = RedisFileStateBatches(server, ttl_seconds=TTL)

    assert batches.close([Tombstone(file_id(7), status, 3, 3007, NOW, OWNER)]) == []

    late = offer(store, 1, 3, b"late", endpoint=endpoint(7))
    assert isinstance(late, FileState)
    assert (late.status, late.received, late.partition_count, late.size) == (status, 3, 3, 3007)
    assert not store.claim(file_id(7), "anyone", NOW, NOW + 60).won
    assert 0 < server.ttl(state_key(file_id(7))) <= TTL
    assert store.incomplete() == []


def test_a_tombstone_closes_a_file_another_delivery_counted_meanwhile(
    server: redis.Redis,
) -> None:
    store = RedisFileStateStore(server, ttl_seconds=TTL)
    batches = RedisFileStateBatches(server, ttl_seconds=TTL)
    add(store, 0, 1, endpoint=endpoint(3))
    assert store.claim(file_id(3), "the per-file path", NOW, NOW + 60).won

    batches.close([Tombstone(file_id(3), FileStatus.UPLOADED, 1, 10, NOW, OWNER)])

    state = store.read(file_id(3), 0)
    assert state is not None
    assert state.status is FileStatus.UPLOADED
    assert not store.finish(file_id(3), "the per-file path", FileStatus.UPLOADED, NOW + 1)


def test_a_tombstone_drops_the_chunks_a_failed_delivery_left_in_redis_and_only_that_files(
    server: redis.Redis, s3_client: S3Client
) -> None:
    """A delivery stored a whole file's chunks, then Redis refused to count them: the file
    later finishes whole, and its orphans go with its tombstone, not days later by TTL."""
    chunks = RedisChunkStore(server, S3ChunkStore(s3_client, BUCKET), 1 << 30, ttl_seconds=TTL)
    chunks.put(
        [
            chunk(endpoint(7), 0, 2, b"a"),
            chunk(endpoint(7), 1, 2, b"b"),
            chunk(endpoint(8), 0, 1, b"c"),
        ]
    )
    batches = RedisFileStateBatches(server, ttl_seconds=TTL)

    batches.close([Tombstone(file_id(7), FileStatus.UPLOADED, 2, 20, NOW, OWNER)])

    assert not server.exists(chunks_key(file_id(7)), meta_key(file_id(7)))
    assert server.exists(chunks_key(file_id(8))) == 1
