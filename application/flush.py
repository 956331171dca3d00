"""FlushPending: at batch end, make every chunk durable that only this container holds, in
one entry of the shard's log."""

from __future__ import annotations

import errno
import hashlib
import logging
from collections import deque

from attrs import evolve

from application.batch_state import BatchState
from application.lifecycle import FileLifecycle
from application.pending import PendingFile
from application.ports import LocalChunkStore, PartitionCache, ShardLedgerMoved
from application.shard_book import HeldChunk, ShardBook
from domain import FileId, redact

log = logging.getLogger("sfb")

RETAIN_BATCHES = 100
"""Batches an untouched entry (and its local bytes, already durable) is kept for reuse."""

SWEEP_EVERY = 10
"""Batches between two walks of every entry, tombstones included, to forget those untouched
for RETAIN_BATCHES; the other batches walk the collecting entries only (a stream of small
files keeps about 100 tombstones a batch: 10,000 of them took 11 to 17 ms a batch to walk)."""

WRITE_ATTEMPTS = 3
"""Writes of a batch's entry, each after reading what an overlapping invocation wrote."""


class FlushPending:
    def __init__(
        self,
        cache: PartitionCache,
        local: LocalChunkStore,
        files: FileLifecycle,
        book: ShardBook,
    ) -> None:
        self._cache = cache
        self._local = local
        self._files = files
        self._book = book

    def __call__(self, batch: BatchState) -> None:
        """Never raises: files whose chunks cannot be made durable are noted in the batch.

        Moving chunks to disk comes last and never raises either: a record's fate is decided
        by remote storage, and a chunk that finds no room on disk is no less durable for it.
        """
        try:
            self._flush(batch)
        finally:
            try:
                SettleLocal(self._cache, self._local)()
            except Exception as error:
                log.error(
                    "chunks could not be moved to disk; they stay in memory",
                    extra={"reason": f"{type(error).__name__}: {error}"},
                )

    def _flush(self, batch: BatchState) -> None:
        """Judge, then write one entry; when another invocation wrote first, judge the
        chunks again against what it wrote (one that now contradicts a stored chunk is a
        late rejection) and write at the new head, up to WRITE_ATTEMPTS times."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            held = self._judge(batch, again=attempt > 1)
            chunks = self._chunks(held, batch)
            written = {chunk.file_id for chunk in chunks}
            try:
                self._book.write(batch, chunks)
            except ShardLedgerMoved as error:
                if attempt < WRITE_ATTEMPTS:
                    log.warning(
                        "the shard's log changed during the batch: another invocation ran "
                        "on this shard at the same time; judging the batch again",
                        extra={"shard": batch.shard, "attempt": attempt},
                    )
                    continue
                self._not_durable(batch, written, error)
                return
            except Exception as error:
                self._not_durable(batch, written, error)
                return
            for entry in held:
                if entry.file_id in written:
                    durable = evolve(entry, durable=entry.durable | entry.unflushed)
                    self._cache.push(durable)
            return

    def _not_durable(self, batch: BatchState, files: set[FileId], error: Exception) -> None:
        """The batch's chunks are not durable; its finished files are noted on their own
        (in the snapshot) if that still can be, else their records are reported too."""
        log.error(
            "the shard's log could not be written; its files' records are reported",
            extra={"shard": batch.shard, "reason": f"{type(error).__name__}: {error}"},
        )
        batch.not_durable.update(files)
        if batch.finished and files:
            try:
                self._book.write(batch, [])
            except Exception as second:
                log.error(
                    "the batch's finished files could not be noted either; their records "
                    "are reported",
                    extra={"shard": batch.shard, "reason": f"{type(second).__name__}: {second}"},
                )
            else:
                return
        batch.not_durable.update(batch.finished)

    def _judge(self, batch: BatchState, again: bool) -> list[PendingFile]:
        """Every open file with chunks only this container holds, judged against the log."""
        held: list[PendingFile] = []
        sweep = batch.number % SWEEP_EVERY == 0
        for file_id in self._cache.all_keys() if sweep else self._cache.open_keys():
            entry = self._cache.get(file_id)
            if entry is None:
                continue
            if entry.is_open and batch.ledger is not None and batch.ledger.knows(file_id):
                self._files.forget(entry)  # finished elsewhere: never made pending again
                continue
            if not entry.is_open or not (
                entry.unflushed or (again and entry.touched_in == batch.number)
            ):
                if entry.touched_in < batch.number - RETAIN_BATCHES:
                    self._files.forget(entry)
                continue
            try:
                if again or not entry.is_fresh(batch.number):
                    entry = self._files.refresh(entry, batch)
                if entry.partitions.is_complete and file_id not in batch.deferred:
                    entry, outcome = self._files.complete(entry, batch)
                    if outcome.is_final:
                        continue
                if entry.unflushed:
                    held.append(entry)
            except Exception as error:
                _cannot_keep(batch, entry, error)
        return held

    def _chunks(self, held: list[PendingFile], batch: BatchState) -> list[HeldChunk]:
        """The held bytes of every unflushed chunk; bytes read back from disk are checked
        against the digest they were admitted with before they go into the log."""
        chunks: list[HeldChunk] = []
        for entry in held:
            try:
                chunks.extend(
                    self._chunk(entry, partition) for partition in sorted(entry.unflushed)
                )
            except Exception as error:
                chunks = [c for c in chunks if c.file_id != entry.file_id]
                _cannot_keep(batch, entry, error)
        return chunks

    def _chunk(self, entry: PendingFile, partition: int) -> HeldChunk:
        ref = entry.partitions.parts[partition]
        content = self._local.held(entry.file_id, partition)
        if content is None:
            content = self._local.get(entry.file_id, partition)
            if hashlib.sha256(content).hexdigest() != ref.digest:
                raise OSError(errno.EIO, f"partition {partition} read back from disk changed")
        return HeldChunk(
            entry.file_id,
            entry.put_endpoint,
            partition,
            entry.partitions.partition_count,
            ref,
            content,
        )


def _cannot_keep(batch: BatchState, entry: PendingFile, error: Exception) -> None:
    log.error(
        "could not make the file's chunks durable; its records are reported",
        extra={
            "file_id": str(entry.file_id),
            "endpoint": redact(entry.put_endpoint),
            "reason": f"{type(error).__name__}: {error}",
        },
    )
    batch.not_durable.add(entry.file_id)


class SettleLocal:
    """One batch end's move of held chunks to disk, within the local store's budget.

    Chunks not yet durable in remote storage go first and are never evicted: on disk if there
    is room, else in memory until a batch end makes them durable. Room is made by evicting
    durable chunks from disk, those of the least recently used files first. A durable chunk
    that still finds no room, or that the disk refuses, is dropped: assembly reads it from
    remote storage. Every cache entry's ``local`` set is kept to what the store holds.
    """

    def __init__(self, cache: PartitionCache, local: LocalChunkStore) -> None:
        self._cache = cache
        self._local = local
        self._gone: dict[FileId, set[int]] = {}
        self._victims: deque[tuple[FileId, int, int]] = deque()
        self._evictable = 0
        self._refusals: list[str] = []

    def __call__(self) -> None:
        self._local.tidy()
        # Only a collecting entry holds chunks (a tombstone keeps digests, no locations).
        entries = [e for f in self._cache.open_keys() if (e := self._cache.get(f)) is not None]
        held: list[tuple[PendingFile, int]] = []
        for entry in sorted(entries, key=lambda e: e.touched_in):
            for partition in sorted(entry.local):
                if self._local.held(entry.file_id, partition) is not None:
                    held.append((entry, partition))
                elif partition in entry.durable:
                    size = entry.partitions.parts[partition].size
                    self._victims.append((entry.file_id, partition, size))
                    self._evictable += size
        held.sort(key=lambda item: (item[1] in item[0].durable, -item[0].touched_in))
        try:
            for entry, partition in held:
                self._settle(entry, partition)
        finally:
            for file_id, partitions in self._gone.items():
                current = self._cache.get(file_id)
                if current is not None:
                    self._cache.push(current.without_local(frozenset(partitions)))
            if self._refusals:
                log.warning(
                    "the local disk refused chunks: those durable in remote storage are read "
                    "from there, the others stay in memory until they are durable",
                    extra={"refused": len(self._refusals), "reason": self._refusals[0]},
                )

    def _settle(self, entry: PendingFile, partition: int) -> None:
        size = entry.partitions.parts[partition].size
        try:
            if self._room_for(size) and self._local.persist(entry.file_id, partition):
                return
        except OSError as error:
            name = errno.errorcode.get(error.errno or 0, type(error).__name__)
            self._refusals.append(f"{name}: {error.strerror or error}")
        if partition in entry.durable:
            self._drop(entry.file_id, partition)

    def _room_for(self, size: int) -> bool:
        """Evict only when that makes enough room: an eviction that cannot help costs a read."""
        if self._local.usage + size - self._local.budget > self._evictable:
            return False
        while self._local.usage + size > self._local.budget and self._victims:
            file_id, partition, victim_size = self._victims.popleft()
            self._evictable -= victim_size
            self._drop(file_id, partition)
        return self._local.usage + size <= self._local.budget

    def _drop(self, file_id: FileId, partition: int) -> None:
        self._local.delete(file_id, partition)
        self._gone.setdefault(file_id, set()).add(partition)
