"""Steps shared by IngestChunk and FlushPending: judge against the shard's log, finish."""

from __future__ import annotations

from application.assemble import AssembleAndUpload
from application.batch_state import BatchState, LateRejection
from application.outcomes import FileOutcome
from application.pending import PendingFile, reconcile
from application.ports import LocalChunkStore, PartitionCache
from application.shard_book import ShardBook
from domain import FileStatus, Limits


class FileLifecycle:
    """Moves one file's state between cache, local store and the shard's log."""

    def __init__(
        self,
        cache: PartitionCache,
        local: LocalChunkStore,
        book: ShardBook,
        assemble: AssembleAndUpload,
        limits: Limits | None = None,
    ) -> None:
        self._cache = cache
        self._local = local
        self._book = book
        self._assemble = assemble
        self._limits = limits or Limits()

    def refresh(self, entry: PendingFile, batch: BatchState) -> PendingFile:
        """Merge what the shard's log holds of the file (as read for this batch: no request).

        Chunks that other containers stored count towards MAX_FILE_BYTES: a file whose
        chunks went to two containers is held to the same limit as one that did not.
        """
        listing = self._book.current(batch).listing(entry.file_id)
        fresh, rejected = reconcile(entry, listing, batch.number, self._limits)
        for partition in entry.local - fresh.local:
            self._local.delete(entry.file_id, partition)
        for partition, error in rejected:
            batch.late_rejections.append(LateRejection(entry.file_id, partition, error))
        self._cache.push(fresh)
        return fresh

    def complete(self, entry: PendingFile, batch: BatchState) -> tuple[PendingFile, FileOutcome]:
        """Upload a file whose every partition is held; close it on a final answer.

        An entry not judged against this batch's view of the log is judged first: another
        container may have finished the file, or hold chunks this one never saw.
        """
        if not entry.is_fresh(batch.number):
            entry = self.refresh(entry, batch)
        if not entry.partitions.is_complete:
            return entry, FileOutcome.INCOMPLETE
        outcome = self._assemble(entry.plan())
        if outcome is FileOutcome.RETRY_LATER:
            batch.deferred.add(entry.file_id)
            return entry, outcome
        closed = self._close(
            entry,
            FileStatus.UPLOADED if outcome is FileOutcome.UPLOADED else FileStatus.FAILED,
            batch,
        )
        batch.finished.add(entry.file_id)
        return closed, outcome

    def forget(self, entry: PendingFile) -> None:
        """Drop this container's copy; what is durable stays durable."""
        for partition in entry.local:
            self._local.delete(entry.file_id, partition)
        self._cache.delete(entry.file_id)

    def _close(self, entry: PendingFile, status: FileStatus, batch: BatchState) -> PendingFile:
        """The tombstone goes first: a cleanup that fails must not cause a second upload.
        The file's entries in the log go once the shard's log says it finished."""
        closed = entry.closed(status, batch.number)
        self._cache.push(closed)
        for partition in entry.local:
            self._local.delete(entry.file_id, partition)
        return closed
