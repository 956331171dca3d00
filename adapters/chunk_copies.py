"""The dynamodb backend's copies of the chunks this container stored, kept on its disk.

A file's chunks are spread over whichever containers took its records, and the one that
completes it reads each chunk with a ranged GET. Those it stored itself it still has: a copy
of each is kept in TMP_DIR, within LOCAL_DISK_BUDGET_BYTES (the oldest go first), and read
back from there, checked against its sha256 before it is served. A copy that is gone,
unreadable or different is read from S3 as before: the object stays what makes a chunk
durable, and a copy only saves a request.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence

from adapters.tmp_storage import os_reason
from application.ports import ByteStream, ChunkObjects, LocalChunkStore
from domain import Chunk, ChunkRef, FileId, PartitionSet

log = logging.getLogger("sfb")

_Key = tuple[FileId, int]


class CopiedChunkObjects:
    """ChunkObjects that keeps a disk copy of what it stores and reads it back first."""

    def __init__(self, objects: ChunkObjects, disk: LocalChunkStore) -> None:
        self._objects = objects
        self._disk = disk
        self._copies: OrderedDict[_Key, str] = OrderedDict()
        """The sha256 of each partition's copy, oldest first."""
        self._by_file: dict[FileId, set[int]] = {}
        self._lock = threading.Lock()

    def store(self, chunks: Sequence[Chunk]) -> str:
        object_id = self._objects.store(chunks)
        self._keep(chunks)
        return object_id

    def unneeded(self, object_id: str, files: Collection[FileId]) -> None:
        self._objects.unneeded(object_id, files)

    def parts(
        self,
        file_id: FileId,
        partition_count: int,
        stored: Mapping[int, tuple[str, str]],
        held: Collection[int] = (),
    ) -> PartitionSet | None:
        """Its copies are read from the disk: no read from S3 takes them along."""
        with self._lock:
            copied = {
                partition
                for partition, (prefix, _) in stored.items()
                if self._copies.get((file_id, partition), "").startswith(prefix)
            }
        return self._objects.parts(file_id, partition_count, stored, {*held, *copied})

    def assembling(self, file_id: FileId, parts: Mapping[int, ChunkRef]) -> None:
        """Nothing more to say: ``parts`` told the objects which chunks it reads from disk."""

    def assembled(self, file_id: FileId) -> None:
        self._objects.assembled(file_id)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        copy = self._copy(file_id, partition, ref)
        if copy is not None:
            return io.BytesIO(copy)
        return self._objects.open(file_id, partition, partition_count, ref)

    def release(self, file_id: FileId, object_ids: Collection[str]) -> None:
        with self._lock:
            for partition in list(self._by_file.get(file_id, ())):
                self._forget((file_id, partition))
        self._objects.release(file_id, object_ids)

    def _keep(self, chunks: Sequence[Chunk]) -> None:
        """Copy each chunk that fits the budget. Never raises: a disk that refuses costs
        requests at assembly, not records."""
        with self._lock:
            for chunk in chunks:
                try:
                    kept = self._write(chunk)
                except OSError as error:
                    log.warning(
                        "TMP_DIR refused a copy of a stored chunk; the chunks this batch "
                        "stored are read from S3 at assembly",
                        extra={"reason": os_reason(error)},
                    )
                    return
                if not kept:
                    return

    def _write(self, chunk: Chunk) -> bool:
        """False when the chunk does not fit the budget even with every older copy gone."""
        key = (chunk.file_id, chunk.partition)
        self._forget(key)
        size = len(chunk.content)
        if size > self._disk.budget:
            return False
        while self._copies and self._disk.usage + size > self._disk.budget:
            self._forget(next(iter(self._copies)))
        self._disk.put(chunk.file_id, chunk.partition, chunk.content)
        try:
            if not self._disk.persist(chunk.file_id, chunk.partition):
                self._disk.delete(chunk.file_id, chunk.partition)
                return False
        except OSError:
            self._disk.delete(chunk.file_id, chunk.partition)
            raise
        self._copies[key] = chunk.ref.digest
        self._by_file.setdefault(chunk.file_id, set()).add(chunk.partition)
        return True

    def _forget(self, key: _Key) -> None:
        """Called with the lock held."""
        if self._copies.pop(key, None) is None:
            return
        file_id, partition = key
        partitions = self._by_file.get(file_id)
        if partitions is not None:
            partitions.discard(partition)
            if not partitions:
                del self._by_file[file_id]
        self._disk.delete(file_id, partition)

    def _copy(self, file_id: FileId, partition: int, ref: ChunkRef) -> bytes | None:
        """The copy's bytes when they are the chunk ``ref`` names."""
        key = (file_id, partition)
        with self._lock:
            if self._copies.get(key) != ref.digest:
                return None
        try:
            data = self._disk.get(file_id, partition)
        except FileNotFoundError:
            return None  # released or evicted meanwhile
        except OSError as error:
            self._lost(key, os_reason(error))
            return None
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.digest:
            self._lost(key, "its bytes no longer match the chunk's sha256")
            return None
        return data

    def _lost(self, key: _Key, reason: str) -> None:
        log.warning(
            "a disk copy of a stored chunk could not be used; it is read from S3",
            extra={"file_id": str(key[0]), "partition": key[1], "reason": reason},
        )
        with self._lock:
            self._forget(key)
