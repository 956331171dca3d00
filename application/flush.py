"""FlushPending: at batch end, make every chunk durable that only this container holds."""

from __future__ import annotations

import errno
import logging
from collections import deque

from application.batch_state import BatchState
from application.lifecycle import FileLifecycle
from application.pending import PendingFile
from application.ports import LocalChunkStore, PartitionCache
from domain import FileId, redact

log = logging.getLogger("sfb")

RETAIN_BATCHES = 100
"""Batches an untouched entry (and its local bytes, already durable) is kept for reuse."""


class FlushPending:
    def __init__(self, cache: PartitionCache, local: LocalChunkStore, files: FileLifecycle) -> None:
        self._cache = cache
        self._local = local
        self._files = files

    def __call__(self, batch: BatchState) -> None:
        """Never raises for one file: a file that cannot be made durable is noted in the batch.

        Moving chunks to disk comes last and never raises either: a record's fate is decided
        by remote storage, and a chunk that finds no room on disk is no less durable for it.
        """
        try:
            self._flush_files(batch)
        finally:
            try:
                SettleLocal(self._cache, self._local)()
            except Exception as error:
                log.error(
                    "chunks could not be moved to disk; they stay in memory",
                    extra={"reason": f"{type(error).__name__}: {error}"},
                )

    def _flush_files(self, batch: BatchState) -> None:
        for file_id in self._cache.all_keys():
            entry = self._cache.get(file_id)
            if entry is None:
                continue
            if entry.is_open and batch.ledger is not None and batch.ledger.knows(file_id):
                self._files.forget(entry)  # finished elsewhere: never made pending again
                continue
            # A duplicate seen through a stale entry may be the redelivery meant to finish a
            # file that another container completed in remote storage: look again.
            stale_touch = entry.touched_in == batch.number and not entry.is_fresh(batch.number)
            if not entry.unflushed and not (entry.is_open and stale_touch):
                if entry.touched_in < batch.number - RETAIN_BATCHES:
                    self._files.forget(entry)
                continue
            try:
                if not entry.is_fresh(batch.number):
                    entry = self._files.refresh(entry, batch)
                if entry.partitions.is_complete and file_id not in batch.deferred:
                    entry, outcome = self._files.complete(entry, batch)
                    if outcome.is_final:
                        continue
                if entry.unflushed:
                    self._files.make_durable(entry, batch)
            except Exception as error:
                log.error(
                    "could not make the file's chunks durable; its records are reported",
                    extra={
                        "file_id": str(file_id),
                        "endpoint": redact(entry.put_endpoint),
                        "reason": f"{type(error).__name__}: {error}",
                    },
                )
                batch.not_durable.add(file_id)


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
        entries = [e for f in self._cache.all_keys() if (e := self._cache.get(f)) is not None]
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
