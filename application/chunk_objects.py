"""StoredChunks: how the dynamodb backend makes chunks durable and counts them, one object a
batch instead of one a chunk.

A batch's chunks that take the per-file path are stored in one object (ChunkObjects) before
any of them is admitted; each admission records, with the partition's digest, the object's
id (StoredChunkState). Every file with a chunk in the object is taken to need it until it
says otherwise: at the batch's end, a file none of whose chunks was admitted from it (refused,
or its records left for redelivery) gives it up; a file that admitted one keeps it until its
finish or give-up. The object is deleted once no file needs it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from application.ports import ChunkObjects, StoredChunkState
from domain import Chunk, FileId, FileState, PartitionArrival, PartitionSet

CHUNKS_PER_OBJECT = 2_000
"""The most chunks an object holds: its index (60 bytes a chunk) must fit a DynamoDB item
(400 KB); a batch of more tiny chunks makes several objects."""

COUNTED_TOGETHER_MOST = 50
"""The most chunks of a file one request counts: a DynamoDB expression is at most 4 KB, and
the condition names each partition (about 30 bytes); a longer run is counted in several."""

ChunkKey = tuple[FileId, int, str]
"""A chunk's file, partition and sha256."""


def chunk_key(chunk: Chunk) -> ChunkKey:
    return (chunk.file_id, chunk.partition, chunk.ref.digest)


class StoredChunks:
    def __init__(self, objects: ChunkObjects, state: StoredChunkState) -> None:
        self._objects = objects
        self._state = state

    def store(self, chunks: Sequence[Chunk]) -> dict[ChunkKey, str]:
        """Make every chunk durable; return the object holding each. Raises as storage does:
        then none of them is to be admitted."""
        where: dict[ChunkKey, str] = {}
        distinct = list({chunk_key(chunk): chunk for chunk in chunks}.values())
        for start in range(0, len(distinct), CHUNKS_PER_OBJECT):
            group = distinct[start : start + CHUNKS_PER_OBJECT]
            object_id = self._objects.store(group)
            where.update((chunk_key(chunk), object_id) for chunk in group)
        return where

    def add(self, arrival: PartitionArrival, object_id: str) -> int | FileState:
        return self._state.add_stored(arrival, object_id)

    def add_together(self, arrivals: Sequence[PartitionArrival], object_id: str) -> int | None:
        return self._state.add_stored_together(arrivals, object_id)

    def unneeded(self, object_id: str, files: Collection[FileId]) -> None:
        self._objects.unneeded(object_id, files)

    def listing(
        self, file_id: FileId, partition_count: int
    ) -> tuple[PartitionSet | None, set[str]]:
        """The file's chunks as its state counted them, and the objects holding them; None
        when one of them is not in the object its state names."""
        stored = self._state.stored(file_id)
        objects = {object_id for _, object_id in stored.values() if object_id}
        return self._objects.parts(file_id, partition_count, stored), objects

    def release(self, file_id: FileId, object_ids: Collection[str]) -> None:
        """The file is closed: its objects go if no other file needs them."""
        self._objects.release(file_id, object_ids)

    def drop_file(self, file_id: FileId) -> None:
        """PendingChunks, for the expiry: the file was given up; its objects go with it
        unless another file needs them."""
        stored = self._state.stored(file_id)
        self._objects.release(file_id, {object_id for _, object_id in stored.values() if object_id})
