"""Steps shared by IngestChunk and FlushPending: refresh from remote, finish, make durable."""

from __future__ import annotations

import logging
from enum import Enum

from attrs import evolve

from application.assemble import AssembleAndUpload, UploadResult
from application.batch_state import BatchState, LateRejection
from application.pending import PendingFile, reconcile
from application.ports import LocalChunkStore, PartitionCache, RemoteChunkStore
from domain import Chunk, FileStatus, Limits

log = logging.getLogger("sfb")


class Completion(Enum):
    INCOMPLETE = "incomplete"
    UPLOADED = "uploaded"
    FAILED = "failed"
    DEFERRED = "deferred"


class FileLifecycle:
    """Moves one file's state between cache, local store and remote store."""

    def __init__(
        self,
        cache: PartitionCache,
        local: LocalChunkStore,
        remote: RemoteChunkStore,
        assemble: AssembleAndUpload,
        limits: Limits | None = None,
    ) -> None:
        self._cache = cache
        self._local = local
        self._remote = remote
        self._assemble = assemble
        self._limits = limits or Limits()

    def refresh(self, entry: PendingFile, batch: BatchState) -> PendingFile:
        """Read remote storage's listing for the file and merge it in (one request).

        Chunks that other containers stored count towards MAX_FILE_BYTES: a file whose
        chunks went to two containers is held to the same limit as one that did not.
        """
        listing = self._remote.get(entry.file_id)
        fresh, rejected = reconcile(entry, listing, batch.number, self._limits)
        for partition in entry.local - fresh.local:
            self._local.delete(entry.file_id, partition)
        for partition, error in rejected:
            batch.late_rejections.append(LateRejection(entry.file_id, partition, error))
        self._cache.push(fresh)
        return fresh

    def complete(self, entry: PendingFile, batch: BatchState) -> tuple[PendingFile, Completion]:
        """Upload a file whose every partition is held; close it on a final answer.

        Chunks made durable in an earlier batch may since have been finished by another
        container, so such an entry is listed again before anything is uploaded.
        """
        if entry.durable and not entry.is_fresh(batch.number):
            entry = self.refresh(entry, batch)
        if not entry.partitions.is_complete:
            return entry, Completion.INCOMPLETE
        result = self._assemble(entry)
        if result is UploadResult.RETRY_LATER:
            batch.deferred.add(entry.file_id)
            return entry, Completion.DEFERRED
        closed = self._close(
            entry,
            FileStatus.UPLOADED if result is UploadResult.UPLOADED else FileStatus.FAILED,
            batch,
        )
        batch.finished.add(entry.file_id)
        return closed, (
            Completion.UPLOADED if result is UploadResult.UPLOADED else Completion.FAILED
        )

    def make_durable(self, entry: PendingFile) -> PendingFile:
        """Write every chunk only this container holds to remote storage.

        The first time a file's chunks go remote, its endpoint goes with them, so that an
        operator can finish it (``sfb redrive``) without waiting for a record.
        """
        unflushed = sorted(entry.unflushed)
        if not entry.durable:
            self._remote.note_endpoint(entry.file_id, entry.put_endpoint)
        self._remote.put(
            Chunk(
                entry.put_endpoint,
                partition,
                entry.partitions.partition_count,
                self._local.get(entry.file_id, partition),
            )
            for partition in unflushed
        )
        durable = evolve(entry, durable=entry.durable | frozenset(unflushed))
        self._cache.push(durable)
        return durable

    def forget(self, entry: PendingFile) -> None:
        """Drop this container's copy; what is durable stays durable."""
        for partition in entry.local:
            self._local.delete(entry.file_id, partition)
        self._cache.delete(entry.file_id)

    def _close(self, entry: PendingFile, status: FileStatus, batch: BatchState) -> PendingFile:
        """The tombstone goes first: a cleanup that fails must not cause a second upload."""
        closed = entry.closed(status, batch.number)
        self._cache.push(closed)
        for partition in entry.local:
            self._local.delete(entry.file_id, partition)
        if entry.durable:
            try:
                self._remote.delete(entry.file_id, entry.partitions.only(entry.durable))
            except Exception as error:
                log.warning(
                    "finished file's pending chunks could not be deleted; "
                    "the pending/ lifecycle rule expires them",
                    extra={
                        "file_id": str(entry.file_id),
                        "reason": f"{type(error).__name__}: {error}",
                    },
                )
        return closed
