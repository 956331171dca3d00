"""FlushPending: at batch end, make every chunk durable that only this container holds."""

from __future__ import annotations

import logging

from application.batch_state import BatchState
from application.lifecycle import Completion, FileLifecycle
from application.ports import LocalChunkStore, PartitionCache
from domain import redact

log = logging.getLogger("sfb")

RETAIN_BATCHES = 100
"""Batches an untouched entry (and its local bytes, already durable) is kept for reuse."""


class NothingToFlush:
    """The shared backend's batch end: every chunk was made durable as it was ingested."""

    def __call__(self, batch: BatchState) -> None:
        return None


class FlushPending:
    def __init__(self, cache: PartitionCache, local: LocalChunkStore, files: FileLifecycle) -> None:
        self._cache = cache
        self._local = local
        self._files = files

    def __call__(self, batch: BatchState) -> None:
        """Never raises for one file: a file that cannot be made durable is noted in the batch."""
        try:
            self._flush_files(batch)
        finally:
            self._local.settle()

    def _flush_files(self, batch: BatchState) -> None:
        for file_id in self._cache.all_keys():
            entry = self._cache.get(file_id)
            if entry is None:
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
                    entry, completion = self._files.complete(entry, batch)
                    if completion in (Completion.UPLOADED, Completion.FAILED):
                        continue
                if entry.unflushed:
                    self._files.make_durable(entry)
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
