"""IngestChunk: admit one chunk, keep its bytes, and finish its file when it is complete."""

from __future__ import annotations

from application.batch_state import BatchState
from application.lifecycle import FileLifecycle
from application.pending import PendingFile
from application.ports import LocalChunkStore, PartitionCache
from application.shard_book import ShardBook
from domain import Admission, Chunk, Limits


class IngestChunk:
    """Costs no remote request but the batch's one read of the shard's log."""

    def __init__(
        self,
        cache: PartitionCache,
        local: LocalChunkStore,
        files: FileLifecycle,
        limits: Limits,
        book: ShardBook | None = None,
    ) -> None:
        self._cache = cache
        self._local = local
        self._files = files
        self._limits = limits
        self._book = book

    def __call__(self, chunk: Chunk, batch: BatchState) -> Admission:
        """Raises a domain.ChunkRejected when the chunk contradicts what is held."""
        self._limits.check_partition_count(chunk.partition_count)
        if self._book is not None and self._book.current(batch).knows(chunk.file_id):
            # A late duplicate of a file finished on this shard, maybe by another container:
            # nothing of it is kept, so nothing of it can be uploaded or left pending.
            cached = self._cache.get(chunk.file_id)
            if cached is not None and cached.is_open:
                self._files.forget(cached)
            return Admission.DUPLICATE
        entry = self._cache.get(chunk.file_id) or PendingFile.new(
            chunk.file_id, chunk.put_endpoint, chunk.partition_count, batch.number
        )
        if entry.is_open and self._book is not None and not entry.is_fresh(batch.number):
            # Judged against the whole log, as read for this batch: chunks other containers
            # stored, and what this one missed while other containers had the shard.
            entry = self._files.refresh(entry, batch)
        admission = entry.partitions.admit(
            chunk.partition, chunk.partition_count, chunk.ref, self._limits
        )
        if not entry.is_open:
            return admission
        if admission is Admission.NEW:
            self._local.put(chunk.file_id, chunk.partition, chunk.content)
            entry = entry.with_local_part(chunk.partition, chunk.ref, batch.number)
        else:
            if chunk.partition in entry.unflushed:
                # Its record was reported because these bytes never reached remote storage;
                # holding them again means a disk that fails to read them back cannot stop it.
                self._local.put(chunk.file_id, chunk.partition, chunk.content)
            entry = entry.touched(batch.number)
        self._cache.push(entry)
        if entry.partitions.is_complete and chunk.file_id not in batch.deferred:
            self._files.complete(entry, batch)
        return admission
