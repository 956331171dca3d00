"""The dynamodb backend's disk copies of the chunks a container stored: read back instead of
a ranged GET when they are the very bytes asked for, from S3 in every other case."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from adapters.chunk_copies import CopiedChunkObjects
from adapters.chunk_objects import S3ChunkObjects
from adapters.tmp_storage import TmpChunkStore
from application.body import AssembledBody, Part
from application.ports import ChunkObjects, ChunkSource, LocalChunkStore
from domain import Chunk, FileId
from tests.fakes import FakeChunkObjects, FakeClock, FakeLocalStore, FakeRemoteStore, FakeStateStore
from tests.integration.builders import BUCKET, chunk, read_all

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

A = "https://uploads.example.com/a.bin?X-Amz-Signature=SECRET-A"
B = "https://uploads.example.com/b.bin?X-Amz-Signature=SECRET-B"
FILE_A = FileId.for_endpoint(A)
SIZE = 1_000


def chunks_of(endpoint: str, count: int) -> list[Chunk]:
    """``count`` chunks of SIZE bytes, each file's and partition's its own."""
    return [
        chunk(endpoint, p, count, f"{endpoint[-1]}{p:09d}".encode() * (SIZE // 10))
        for p in range(count)
    ]


class Fakes:
    def __init__(self, disk: LocalChunkStore, root: Path | None = None) -> None:
        self.root = root
        """Where a TmpChunkStore ``disk`` writes."""
        self.remote = FakeRemoteStore()
        self.state = FakeStateStore()
        self.inner = FakeChunkObjects(self.remote, self.state, FakeClock())
        self.disk = disk
        self.copies = CopiedChunkObjects(self.inner, disk)

    def store(self, chunks: list[Chunk]) -> str:
        return self.copies.store(chunks)

    def read(self, chunks: list[Chunk], object_ids: list[str]) -> list[bytes]:
        """Each chunk of one file through the wrapper, as assembly reads it."""
        stored = {
            c.partition: (c.ref.digest_prefix, object_id)
            for c, object_id in zip(chunks, object_ids, strict=True)
        }
        parts = self.copies.parts(chunks[0].file_id, chunks[0].partition_count, stored)
        assert parts is not None
        return [
            read_all(self.copies.open(c.file_id, c.partition, c.partition_count, parts.parts[p]))
            for p, c in enumerate(chunks)
        ]

    @property
    def remote_reads(self) -> int:
        return self.remote.operations["open"]


@pytest.fixture
def on_disk(tmp_path: Path) -> Fakes:
    return Fakes(TmpChunkStore(tmp_path, budget=10 * SIZE, name="sfb-copies"), tmp_path)


def test_the_chunks_a_container_stored_are_read_back_from_its_disk(on_disk: Fakes) -> None:
    a = chunks_of(A, 3)
    object_id = on_disk.store(a)

    assert on_disk.read(a, [object_id] * 3) == [c.content for c in a]
    assert on_disk.remote_reads == 0
    assert on_disk.remote.operations["put"] == 1  # the object stays what makes them durable


def _corrupt(fakes: Fakes, chunks: list[Chunk]) -> None:
    assert fakes.root is not None
    path = next((fakes.root / "sfb-copies").rglob(f"{chunks[0].partition:05d}"))
    path.write_bytes(b"x" * SIZE)


def _other_bytes_later(fakes: Fakes, chunks: list[Chunk]) -> None:
    """Another record for partition 0 (refused by the state), stored by a later batch."""
    fakes.store([chunk(A, 0, 3, b"other bytes" * 10)])


def _evicted(fakes: Fakes, chunks: list[Chunk]) -> None:
    fakes.store(chunks_of(B, 10))  # the budget holds 10: every copy of A goes first


def _released_elsewhere(fakes: Fakes, chunks: list[Chunk]) -> None:
    fakes.copies.release(FileId.for_endpoint(B), [])  # another file's release keeps A's


CASES: list[tuple[str, Callable[[Fakes, list[Chunk]], None], int, bool]] = [
    ("corrupted-on-disk", _corrupt, 1, True),
    ("other-bytes-stored-later", _other_bytes_later, 1, False),
    ("evicted-by-newer-copies", _evicted, 3, False),
    ("another-files-release", _released_elsewhere, 0, False),
]


@pytest.mark.parametrize(
    ("change", "remote_reads", "warned"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_copy_that_is_not_the_chunk_asked_for_is_read_from_s3(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: Callable[[Fakes, list[Chunk]], None],
    remote_reads: int,
    warned: bool,
) -> None:
    fakes = Fakes(TmpChunkStore(tmp_path, budget=10 * SIZE, name="sfb-copies"), tmp_path)
    a = chunks_of(A, 3)
    object_id = fakes.store(a)
    change(fakes, a)

    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert fakes.read(a, [object_id] * 3) == [c.content for c in a]

    assert fakes.remote_reads == remote_reads
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warnings) == warned
    assert all("SECRET" not in r.getMessage() + str(r.__dict__) for r in caplog.records)


def test_an_unreadable_copy_is_read_from_s3_and_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    disk = FakeLocalStore()
    fakes = Fakes(disk)
    a = chunks_of(A, 2)
    object_id = fakes.store(a)
    disk.unreadable.add((FILE_A, 1))

    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert fakes.read(a, [object_id] * 2) == [c.content for c in a]
        assert fakes.read(a, [object_id] * 2) == [c.content for c in a]

    assert fakes.remote_reads == 2  # the bad copy is dropped, not tried again
    assert (FILE_A, 1) not in disk.files
    assert "EIO" in caplog.records[0].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_disk_that_refuses_copies_costs_reads_not_records(
    caplog: pytest.LogCaptureFixture, error: int
) -> None:
    disk = FakeLocalStore()
    disk.write_error = error
    fakes = Fakes(disk)
    a = chunks_of(A, 2)

    with caplog.at_level(logging.WARNING, logger="sfb"):
        object_id = fakes.store(a)  # stored all the same

    assert fakes.read(a, [object_id] * 2) == [c.content for c in a]
    assert fakes.remote_reads == 2
    assert disk.files == {}  # nothing left held in memory either
    assert [r.reason for r in caplog.records] == [  # type: ignore[attr-defined]
        f"{errno.errorcode[error]}: {os.strerror(error)}"
    ]


def test_copies_keep_to_the_budget_oldest_first_and_go_with_their_file(
    tmp_path: Path,
) -> None:
    disk = TmpChunkStore(tmp_path, budget=4 * SIZE, name="sfb-copies")
    fakes = Fakes(disk)
    a, b = chunks_of(A, 3), chunks_of(B, 3)
    object_a = fakes.store(a)
    object_b = fakes.store(b)  # 6 chunks for a budget of 4: A's first two go

    assert disk.usage == 4 * SIZE
    assert fakes.read(a, [object_a] * 3) == [c.content for c in a]
    assert fakes.remote_reads == 2

    fakes.copies.release(FILE_A, [object_a])
    assert disk.usage == 3 * SIZE  # only B's copies are left
    assert fakes.read(b, [object_b] * 3) == [c.content for c in b]
    assert fakes.remote_reads == 2


def test_a_chunk_larger_than_the_budget_is_not_copied_and_evicts_nothing(
    tmp_path: Path,
) -> None:
    disk = TmpChunkStore(tmp_path, budget=2 * SIZE, name="sfb-copies")
    fakes = Fakes(disk)
    small = chunks_of(A, 1)
    fakes.store(small)
    fakes.store([chunk(B, 0, 1, b"b" * (3 * SIZE))])

    assert disk.usage == SIZE


def test_a_batch_that_could_not_be_stored_leaves_no_copy(tmp_path: Path) -> None:
    disk = TmpChunkStore(tmp_path, budget=10 * SIZE, name="sfb-copies")
    fakes = Fakes(disk)
    fakes.remote.failing_operations.add("put")

    with pytest.raises(OSError, match="refuses"):
        fakes.store(chunks_of(A, 2))

    assert disk.usage == 0


def test_two_stores_of_one_container_do_not_sweep_each_other(tmp_path: Path) -> None:
    """Each store takes what lies beside its own directory for an earlier container's."""
    chunks = TmpChunkStore(tmp_path, budget=10 * SIZE)
    chunks.put(FILE_A, 0, b"kept")
    assert chunks.persist(FILE_A, 0)

    copies = TmpChunkStore(tmp_path, budget=10 * SIZE, name="sfb-copies")

    assert chunks.get(FILE_A, 0) == b"kept"
    assert copies.usage == 0


def test_on_s3_a_completing_container_gets_none_of_its_own_chunks(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str, tmp_path: Path
) -> None:
    gets: list[str] = []

    def count(model: Any, **_: Any) -> None:
        if model.name == "GetObject":
            gets.append(model.name)

    s3_client.meta.events.register("before-call", count)
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, ttl_seconds=86_400.0)
    mine = CopiedChunkObjects(objects, TmpChunkStore(tmp_path / "mine", name="sfb-copies"))
    theirs = CopiedChunkObjects(objects, TmpChunkStore(tmp_path / "theirs", name="sfb-copies"))
    a = chunks_of(A, 4)
    ids = [mine.store(a[:2])] * 2 + [theirs.store(a[2:])] * 2
    stored = {c.partition: (c.ref.digest_prefix, i) for c, i in zip(a, ids, strict=True)}

    parts = mine.parts(FILE_A, 4, stored)
    assert parts is not None
    read = [read_all(mine.open(FILE_A, p, 4, parts.parts[p])) for p in range(4)]

    assert read == [c.content for c in a]
    assert len(gets) == 2  # only the other container's two


def test_the_wrapper_fits_the_chunk_objects_port(tmp_path: Path) -> None:
    """mypy checks the fit here: the container wires it through providers it cannot see
    (assembly reads the dynamodb backend's chunks through it: a ChunkSource too)."""
    fakes = Fakes(FakeLocalStore())
    port: ChunkObjects = fakes.copies
    source: ChunkSource = fakes.copies
    disk: LocalChunkStore = TmpChunkStore(tmp_path, name="sfb-copies")

    assert [port, source, disk]


def test_a_chunk_read_from_the_disk_is_stepped_over_by_the_read_of_the_others(
    s3_client: S3Client, dynamodb: DynamoDBClient, table: str, tmp_path: Path
) -> None:
    """Another container stored all four; this one stored partition 1 again (a duplicate,
    refused): it reads 1 from its disk, and 0, 2 and 3 in one ranged read over 1's bytes (S3
    bills the request, not the bytes); nothing of a read is kept once the body was read, so
    a retried upload reads the same again."""
    gets: list[str] = []
    s3_client.meta.events.register("before-call.s3.GetObject", lambda **_: gets.append("GET"))
    objects = S3ChunkObjects(s3_client, BUCKET, dynamodb, table, 86_400.0, read_ahead=8)
    mine = CopiedChunkObjects(objects, TmpChunkStore(tmp_path, name="sfb-copies"))
    a = chunks_of(A, 4)
    theirs = objects.store(a)
    mine.store([a[1]])
    stored = {c.partition: (c.ref.digest_prefix, theirs) for c in a}
    parts = mine.parts(FILE_A, 4, stored)
    assert parts is not None
    body = AssembledBody(
        tuple(
            Part(parts.parts[p], partial(mine.open, FILE_A, p, 4, parts.parts[p])) for p in range(4)
        ),
        read_ahead=8,
    )

    for attempt in (1, 2):
        assert read_all(body.open()) == b"".join(c.content for c in a)
        assert len(gets) == attempt
