"""WholeFiles: the dynamodb backend's path for a file whose every partition is in the batch.

Such a file needs neither its chunks in S3 nor its per-file item updates (add, claim,
finish): one BatchGetItem for the batch's whole files tells which have no item yet, each of
those is assembled from memory and uploaded in its lane, and its tombstone is written with
others in one BatchWriteItem, so later deliveries find it closed. A whole file that already
has an item (collecting elsewhere, being assembled, closed) takes the per-file path, which
judges it as ever.

A whole file whose upload must be tried again is then stored as the per-file path stores it
(its chunks in S3, counted in its item): complete, unclaimed, its last record reported, so
the redelivery or ``sfb redrive`` finishes it as any other.

What it gives up, for 2 requests every 100 files instead of 8 a file: between the lookup and
the tombstone nothing marks the file as taken, so two deliveries of it racing in that window
both upload it, and a crash before the tombstone leaves the redelivery to upload it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from attrs import define, field

from application.assemble import AssembleAndUpload
from application.batch_state import BatchState
from application.chunk_objects import StoredChunks, chunk_key
from application.outcomes import FileOutcome
from application.plan import AssemblyPlan
from application.ports import (
    FileStateBatches,
    FileStateStore,
    LocalChunkStore,
    RemoteChunkStore,
)
from application.tombstones import Tombstone
from domain import (
    Admission,
    Chunk,
    ChunkRejected,
    FileId,
    FileState,
    FileStatus,
    FileTooLarge,
    Limits,
    PartitionArrival,
    PartitionSet,
    redact,
)

log = logging.getLogger("sfb")

TOMBSTONES_PER_WRITE = 25
"""Tombstones are written as soon as this many wait (one BatchWriteItem's worth), the rest
at the batch's end: a crash loses fewer of them than if all waited for the end."""


def whole_files(chunks: Iterable[Chunk], limits: Limits) -> dict[FileId, str]:
    """The files that ``chunks``, admitted in their order by the one rule of admission,
    complete by themselves, with their putEndpoint.

    The same rule the lanes then apply (first count and first bytes stand, the limits), so a
    file found whole here is complete in its lane too.
    """
    held: dict[FileId, PartitionSet] = {}
    complete: dict[FileId, str] = {}
    for chunk in chunks:
        file_id = chunk.file_id
        if file_id in complete:
            continue
        try:
            parts, _ = _admitted(held.get(file_id), chunk, limits)
        except ChunkRejected:
            continue
        held[file_id] = parts
        if parts.is_complete:
            complete[file_id] = chunk.put_endpoint
    return complete


def _check_limits(chunk: Chunk, limits: Limits) -> None:
    """The per-file path's checks before it stores a chunk, with the same words: the count's
    limit, then a chunk alone over MAX_FILE_BYTES."""
    limits.check_partition_count(chunk.partition_count)
    if chunk.ref.size > limits.max_file_bytes:
        raise FileTooLarge(
            f"a {chunk.ref.size}-byte chunk is over MAX_FILE_BYTES {limits.max_file_bytes}"
        )


def _admitted(
    parts: PartitionSet | None, chunk: Chunk, limits: Limits
) -> tuple[PartitionSet, Admission]:
    """``parts`` with the chunk, checked as the per-file path checks it (the limits first,
    then the rule of admission); raises a ChunkRejected."""
    _check_limits(chunk, limits)
    parts = parts or PartitionSet(chunk.partition_count)
    admission = parts.admit(chunk.partition, chunk.partition_count, chunk.ref, limits)
    if admission is Admission.NEW:
        parts = parts.with_part(chunk.partition, chunk.ref)
    return parts, admission


class WholeFiles:
    def __init__(
        self,
        *,
        batches: FileStateBatches,
        state: FileStateStore,
        remote: RemoteChunkStore,
        local: LocalChunkStore,
        assemble: AssembleAndUpload,
        limits: Limits,
        owner: str,
        clock: Callable[[], float],
        objects: StoredChunks | None = None,
    ) -> None:
        """``objects``: where the dynamodb backend stores a file kept for its next try (one
        object); None stores each chunk in ``remote``."""
        self._objects = objects
        self._batches = batches
        self._state = state
        self._remote = remote
        self._local = local
        self._assemble = assemble
        self._limits = limits
        self._owner = owner
        self._clock = clock

    def start(self, chunks: Sequence[Chunk]) -> WholeBatch:
        """The batch's whole files that the shared state knows nothing of yet.

        A lookup that fails leaves every file to the per-file path: nothing is lost but time.
        """
        candidates = whole_files(chunks, self._limits)
        unknown: frozenset[FileId] = frozenset()
        if candidates:
            try:
                unknown = self._batches.unknown(candidates.keys())
            except Exception as error:
                log.warning(
                    "whole files could not be looked up; they take the per-file path",
                    extra={"files": len(candidates), "reason": f"{type(error).__name__}: {error}"},
                )
        files = {f: _WholeFile(endpoint) for f, endpoint in candidates.items() if f in unknown}
        return WholeBatch(self, files)

    def admit(self, file: _WholeFile, chunk: Chunk, batch: BatchState) -> Admission:
        if file.closed is not None:
            _check_limits(chunk, self._limits)
            return Admission.DUPLICATE  # the file is finished: a late duplicate, as ever
        file.parts, admission = _admitted(file.parts, chunk, self._limits)
        if admission is Admission.DUPLICATE:
            return admission
        file.chunks[chunk.partition] = chunk
        self._local.put(chunk.file_id, chunk.partition, chunk.content)
        if file.parts.is_complete and not file.tried:
            self._finish(chunk.file_id, file, batch)
        return admission

    def _finish(self, file_id: FileId, file: _WholeFile, batch: BatchState) -> None:
        """Upload from memory; UPLOADED or REFUSED close the file; RETRY_LATER stores it for
        the next try (``_keep``)."""
        file.tried = True
        parts = file.parts
        assert parts is not None
        plan = AssemblyPlan(file_id, file.put_endpoint, parts, local=frozenset(parts.parts))
        try:
            outcome = self._assemble(plan)
        finally:
            for partition in parts.parts:
                self._local.delete(file_id, partition)
        if outcome is FileOutcome.RETRY_LATER:
            if self._keep(file_id, file):
                file.kept = True
                batch.deferred.add(file_id)  # its last record brings it back
            return
        file.closed = FileStatus.UPLOADED if outcome is FileOutcome.UPLOADED else FileStatus.FAILED
        batch.finished.add(file_id)
        file.tombstone = Tombstone(
            file_id, file.closed, parts.partition_count, parts.size, self._clock(), self._owner
        )

    def _keep(self, file_id: FileId, file: _WholeFile) -> bool:
        """Store a complete file whose upload must be tried again, as the per-file path holds
        one: chunks in S3, then each counted in the file's item, left unclaimed. False, and
        every record of the file is delivered again, when that fails or another delivery
        of the file was counted meanwhile (the redelivery judges it by the item)."""
        chunks = [file.chunks[partition] for partition in sorted(file.chunks)]
        now = self._clock()
        fields = {"file_id": str(file_id), "endpoint": redact(file.put_endpoint)}
        try:
            counted = self._count(file_id, chunks, now)
        except Exception as error:
            log.warning(
                "the file could not be stored for its next try; its records are delivered again",
                extra={**fields, "reason": f"{type(error).__name__}: {error}"},
            )
            return False
        if not all(isinstance(received, int) for received in counted):
            log.warning(
                "another delivery of the file was counted meanwhile; its records are "
                "delivered again",
                extra=fields,
            )
            return False
        return True

    def _count(self, file_id: FileId, chunks: Sequence[Chunk], now: float) -> list[int | FileState]:
        """Store the chunks, then count each. In one object, which the file lets go at once
        when none of them was counted (another delivery of the file was counted first)."""
        if self._objects is None:
            self._remote.put(chunks)
            return [
                self._state.add_chunk(PartitionArrival.of(chunk, self._limits, now))
                for chunk in chunks
            ]
        where = self._objects.store(chunks)
        counted = [
            self._objects.add(
                PartitionArrival.of(chunk, self._limits, now), where[chunk_key(chunk)]
            )
            for chunk in chunks
        ]
        if all(isinstance(added, FileState) for added in counted):
            for object_id in set(where.values()):
                self._objects.unneeded(object_id, {file_id})
        return counted

    def close(self, tombstones: Sequence[Tombstone]) -> None:
        """Never raises: the files are finished whether or not their tombstones are written."""
        if not tombstones:
            return
        try:
            unwritten = self._batches.close(tombstones)
            reason = "still unprocessed after retries"
        except Exception as error:
            unwritten = [t.file_id for t in tombstones]
            reason = f"{type(error).__name__}: {error}"
        if unwritten:
            log.warning(
                "files were finished but their tombstones could not be written; a late "
                "duplicate of one starts it again",
                extra={"file_ids": [str(f) for f in unwritten], "reason": reason},
            )


@define
class _WholeFile:
    put_endpoint: str = field(repr=False)
    parts: PartitionSet | None = None
    chunks: dict[int, Chunk] = field(factory=dict, repr=False)
    tried: bool = False
    """Its upload was tried in this batch: once is all, as on the per-file path."""
    kept: bool = False
    """Stored as the per-file path stores it, for the next try."""
    closed: FileStatus | None = None
    tombstone: Tombstone | None = None


class WholeBatch:
    """One batch's whole files: each admitted in its lane, the tombstones gathered across
    lanes and written TOMBSTONES_PER_WRITE at a time."""

    def __init__(self, use_case: WholeFiles, files: dict[FileId, _WholeFile]) -> None:
        self._use_case = use_case
        self._files = files
        self._waiting: list[Tombstone] = []
        self._lock = threading.Lock()

    @property
    def file_ids(self) -> frozenset[FileId]:
        return frozenset(self._files)

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._files

    def admit(self, chunk: Chunk, batch: BatchState) -> Admission:
        """Raises a ChunkRejected as the per-file path would for the same chunk; only the
        file's own lane calls it for that file."""
        file = self._files[chunk.file_id]
        admission = self._use_case.admit(file, chunk, batch)
        tombstone, file.tombstone = file.tombstone, None
        if tombstone is not None:
            self._note(tombstone)
        return admission

    def _note(self, tombstone: Tombstone) -> None:
        with self._lock:
            self._waiting.append(tombstone)
            if len(self._waiting) < TOMBSTONES_PER_WRITE:
                return
            ready, self._waiting = self._waiting, []
        self._use_case.close(ready)

    def end(self) -> frozenset[FileId]:
        """Write the tombstones still waiting; return the files neither finished nor stored,
        whose records must all be delivered again."""
        with self._lock:
            ready, self._waiting = self._waiting, []
        self._use_case.close(ready)
        return frozenset(
            f for f, file in self._files.items() if file.closed is None and not file.kept
        )
