"""The redis backend's chunk bytes on a real redis-server, spilling to S3 (moto) past the
budget: a listing names only what the shared state admitted, wherever its bytes are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import redis

from adapters.redis_chunks import RedisChunkStore
from adapters.redis_state import (
    RedisFileStateStore,
    chunks_key,
    digests_key,
    meta_key,
    state_key,
)
from adapters.s3_storage import PENDING, S3ChunkStore
from application.ports import ChunkSource
from domain import Chunk, FileId, Limits, PartitionArrival
from tests.integration.builders import BUCKET, chunk, read_all

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

TTL = 3_600.0
NOW = 1_700_000_000.0
ROOM = 5 * 1024**3
ENDPOINT = "https://uploads.example.com/a.bin?X-Amz-Signature=s3cr3t"
FILE = FileId.for_endpoint(ENDPOINT)
PLENTY = 1 << 40
"""A budget no test reaches."""


class FrozenClock:
    """The store re-reads the server's memory once a second: frozen, it never does."""

    def __call__(self) -> float:
        return 0.0


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    connection.flushdb()
    yield connection
    connection.close()


@pytest.fixture
def state(client: redis.Redis) -> RedisFileStateStore:
    return RedisFileStateStore(client, ttl_seconds=TTL)


def store(client: redis.Redis, s3: S3Client, budget: int = PLENTY) -> RedisChunkStore:
    return RedisChunkStore(
        client, S3ChunkStore(s3, BUCKET), budget, ttl_seconds=TTL, clock=FrozenClock()
    )


def admit(state: RedisFileStateStore, piece: Chunk) -> int | None:
    """How many partitions the file holds after it; None when the state refused it."""
    added = state.add_chunk(PartitionArrival.of(piece, Limits(max_file_bytes=ROOM), NOW))
    return added if isinstance(added, int) else None


def pending_objects(s3: S3Client) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=PENDING)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_chunk_under_the_budget_stays_in_redis_and_is_listed_once_the_state_admits_it(
    client: redis.Redis, s3_client: S3Client, state: RedisFileStateStore
) -> None:
    chunks = store(client, s3_client)
    piece = chunk(ENDPOINT, 1, 3, b"second part")

    chunks.put([piece])

    assert chunks.get(FILE) is None  # bytes alone are not a received partition
    assert admit(state, piece) == 1
    listing = chunks.get(FILE)
    assert listing is not None
    assert (listing.partition_count, dict(listing.parts)) == (3, {1: piece.ref})
    assert read_all(chunks.open(FILE, 1, 3, piece.ref)) == b"second part"
    assert pending_objects(s3_client) == []


def test_past_the_budget_a_chunk_goes_to_s3_and_is_read_back_from_there(
    client: redis.Redis, s3_client: S3Client, state: RedisFileStateStore
) -> None:
    chunks = store(client, s3_client, budget=0)
    piece = chunk(ENDPOINT, 0, 2, b"spilled bytes")

    chunks.put([piece])
    admit(state, piece)

    assert client.hlen(chunks_key(FILE)) == 0
    assert len(pending_objects(s3_client)) == 1
    listing = chunks.get(FILE)
    assert listing is not None
    assert dict(listing.parts) == {0: piece.ref}
    assert read_all(chunks.open(FILE, 0, 2, piece.ref)) == b"spilled bytes"


def test_the_budget_is_the_servers_used_memory_plus_what_this_container_added(
    client: redis.Redis, s3_client: S3Client
) -> None:
    used = int(client.info("memory")["used_memory"])
    chunks = store(client, s3_client, budget=used + 150)

    chunks.put([chunk(ENDPOINT, p, 3, bytes([p]) * 100) for p in range(3)])

    assert client.hlen(chunks_key(FILE)) == 1
    assert len(pending_objects(s3_client)) == 2


@pytest.mark.parametrize(
    "orphan",
    [
        pytest.param(b"bytes of a record whose state write never ran", id="crash"),
        pytest.param(b"a conflicting chunk the state refused", id="conflict"),
    ],
)
def test_bytes_the_state_did_not_admit_are_never_listed(
    client: redis.Redis, s3_client: S3Client, state: RedisFileStateStore, orphan: bytes
) -> None:
    chunks = store(client, s3_client)
    stray = chunk(ENDPOINT, 0, 2, orphan)
    first = chunk(ENDPOINT, 0, 2, b"the bytes that stand")
    chunks.put([stray])
    chunks.put([first])
    admit(state, first)
    assert admit(state, stray) is None

    listing = chunks.get(FILE)

    assert listing is not None
    assert dict(listing.parts) == {0: first.ref}
    chunks.discard(stray)
    assert client.hlen(chunks_key(FILE)) == 1
    assert read_all(chunks.open(FILE, 0, 2, first.ref)) == b"the bytes that stand"


def test_delete_removes_a_finished_files_chunks_from_redis_and_s3(
    client: redis.Redis, s3_client: S3Client, state: RedisFileStateStore
) -> None:
    used = int(client.info("memory")["used_memory"])
    chunks = store(client, s3_client, budget=used + 10)
    pieces = [chunk(ENDPOINT, p, 2, bytes([p]) * 8) for p in range(2)]
    chunks.put(pieces)
    for piece in pieces:
        admit(state, piece)
    listing = chunks.get(FILE)
    assert listing is not None
    assert len(pending_objects(s3_client)) == 1

    chunks.delete(FILE, listing)

    assert not client.exists(chunks_key(FILE), meta_key(FILE))
    assert pending_objects(s3_client) == []
    assert client.exists(state_key(FILE), digests_key(FILE)) == 2  # the state is not its to drop


def test_chunk_keys_expire_as_a_collecting_files_state_does(
    client: redis.Redis, s3_client: S3Client
) -> None:
    store(client, s3_client).put([chunk(ENDPOINT, 0, 2, b"x")])

    for key in (chunks_key(FILE), meta_key(FILE)):
        assert 0 < client.ttl(key) <= TTL


def test_the_store_fits_the_port_assembly_reads_chunks_through(
    client: redis.Redis, s3_client: S3Client
) -> None:
    """mypy checks the fit here: the container wires it through providers it cannot see."""
    source: ChunkSource = store(client, s3_client)

    assert source
