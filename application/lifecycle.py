"""Steps shared by IngestChunk and FlushPending: refresh from remote, finish, make durable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from attrs import evolve

from application.assemble import AssembleAndUpload
from application.batch_state import BatchState, LateRejection
from application.outcomes import FileOutcome
from application.pending import PendingFile, reconcile
from application.ports import (
    LocalChunkStore,
    PartitionCache,
    RemoteChunkStore,
    ShardLedgerMoved,
    ShardLedgers,
)
from domain import Chunk, FileId, FileStatus, Limits, PartitionSet, ShardLedger

log = logging.getLogger("sfb")


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

    def complete(self, entry: PendingFile, batch: BatchState) -> tuple[PendingFile, FileOutcome]:
        """Upload a file whose every partition is held; close it on a final answer.

        Chunks made durable in an earlier batch may since have been finished by another
        container, so such an entry is listed again before anything is uploaded.
        """
        remote_open = batch.ledger is not None and batch.ledger.is_open(entry.file_id)
        if (entry.durable or remote_open) and not entry.is_fresh(batch.number):
            # Open in the shard's ledger: another container may hold chunks this one never saw.
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

    def make_durable(self, entry: PendingFile, batch: BatchState) -> PendingFile:
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
        batch.made_durable.add(entry.file_id)
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
            batch.cleanup[entry.file_id] = entry.partitions.only(entry.durable)
        if not batch.keeps_ledger:
            self.clean_up(batch)
        return closed

    def clean_up(self, batch: BatchState) -> None:
        """Delete finished files' pending chunks; with a ledger, only once it says finished
        (else a redelivery to another container would find neither chunks nor ledger entry
        and finish the file again with other bytes)."""
        while batch.cleanup:
            file_id, partitions = batch.cleanup.popitem()
            try:
                self._remote.delete(file_id, partitions)
            except Exception as error:
                log.warning(
                    "finished file's pending chunks could not be deleted; "
                    "the pending/ lifecycle rule expires them",
                    extra={
                        "file_id": str(file_id),
                        "reason": f"{type(error).__name__}: {error}",
                    },
                )


_WRITE_ATTEMPTS = 3


class ShardBook:
    """Keeps the shard's ledger for one container (local backend): read once a batch, at
    its first chunk; written at batch end only when the batch changed it.

    Every finished file is noted, those completing inside one batch too: a chunk of such a
    file that reaches another container later (a producer's retry, other bytes) would
    otherwise start it again there and could finish it with other bytes. The cost is one
    PUT per batch that opens or finishes a file, none per file.
    """

    def __init__(
        self,
        ledgers: ShardLedgers,
        files: FileLifecycle,
        clock: Callable[[], float],
        retention_seconds: float,
    ) -> None:
        self._ledgers = ledgers
        self._files = files
        self._clock = clock
        self._retention = retention_seconds
        self._reading = threading.Lock()
        self._owed: dict[str, tuple[set[FileId], set[FileId], dict[FileId, PartitionSet]]] = {}
        """Per shard, what an earlier batch end could not write: opened, finished, cleanup."""

    def current(self, batch: BatchState) -> ShardLedger:
        """The shard's ledger for this batch (one GET, the first time it is asked for, even
        by several files' lanes at once)."""
        with self._reading:
            if batch.ledger_error is not None:
                raise batch.ledger_error
            if batch.ledger is None:
                try:
                    batch.ledger = self._ledgers.read(batch.shard) or ShardLedger()
                except Exception as error:
                    # Without it no file can be told finished or not: nothing is taken.
                    batch.ledger_error = error
                    raise
            return batch.ledger

    def record(self, batch: BatchState) -> set[FileId]:
        """Write what the batch changed; return the files whose records must be reported
        because the ledger could not be written (their pending chunks are kept)."""
        opened, finished, cleanup = self._owed.pop(batch.shard, (set(), set(), {}))
        cleanup.update(batch.cleanup)
        batch.cleanup.clear()
        finished |= batch.finished
        opened |= batch.made_durable - finished
        if not opened and not finished:
            self._delete(cleanup)
            return set()
        try:
            self._write(batch, opened, finished)
        except Exception as error:
            log.error(
                "the shard's ledger could not be written; its files' records are reported",
                extra={"shard": batch.shard, "reason": f"{type(error).__name__}: {error}"},
            )
            self._owed[batch.shard] = (opened, finished, cleanup)
            return opened | finished
        self._delete(cleanup)
        return set()

    def _write(self, batch: BatchState, opened: set[FileId], finished: set[FileId]) -> None:
        """Apply the batch's changes to the ledger as stored; read it again when another
        invocation wrote in between (one that overlapped on the shard), up to three times."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            ledger = self.current(batch)
            now = self._clock()
            changed = ledger.opened(opened).finished_at(finished, now).pruned(now - self._retention)
            if changed.same_as(ledger):
                return
            changed = changed.next_version()
            try:
                self._ledgers.write(batch.shard, changed)
            except ShardLedgerMoved:
                if attempt == _WRITE_ATTEMPTS:
                    raise
                log.warning(
                    "the shard's ledger changed during the batch: another invocation ran on "
                    "this shard at the same time; reading it again",
                    extra={"shard": batch.shard, "attempt": attempt},
                )
                batch.ledger = None
                continue
            batch.ledger = changed
            return

    def _delete(self, cleanup: dict[FileId, PartitionSet]) -> None:
        batch = BatchState(0, cleanup=dict(cleanup))
        self._files.clean_up(batch)
