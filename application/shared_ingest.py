"""SharedIngestChunk: the DynamoDB backend's ingest, for many shards and parallel batches.

Each chunk is made durable in remote storage before the shared state counts it, so the state
never names bytes that could be lost. Exactly one invocation wins the claim to assemble a
complete file; a holder that fails gives the claim back at once, and one that dies is
replaced once its lease has passed: when its invocation must have ended, if it knew that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from application.assemble import AssembleAndUpload
from application.batch_state import BatchState
from application.outcomes import FileOutcome
from application.plan import AssemblyPlan
from application.ports import FileStateStore, RemoteChunkStore
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
    redact,
)

log = logging.getLogger("sfb")

LEASE_MARGIN_SECONDS = 5.0
"""Added to the invocation's remaining time for a claim's lease: clock differences between
hosts, and the claim's own request."""


class SharedIngestChunk:
    def __init__(
        self,
        remote: RemoteChunkStore,
        state: FileStateStore,
        assemble: AssembleAndUpload,
        limits: Limits,
        owner: str,
        lease_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._remote = remote
        self._state = state
        self._assemble = assemble
        self._limits = limits
        self._owner = owner
        self._lease = lease_seconds
        self._clock = clock

    def __call__(self, chunk: Chunk, batch: BatchState) -> Admission:
        """Raises a domain.ChunkRejected when the chunk contradicts the shared state."""
        self._limits.check_partition_count(chunk.partition_count)
        if chunk.ref.size > self._limits.max_file_bytes:
            raise FileTooLarge(
                f"a {chunk.ref.size}-byte chunk is over MAX_FILE_BYTES "
                f"{self._limits.max_file_bytes}"
            )
        self._remote.put([chunk])
        added = self._state.add_chunk(PartitionArrival.of(chunk, self._limits, self._clock()))
        if isinstance(added, FileState):
            return self._refused(chunk, added, batch)
        if added == chunk.partition_count:
            self.complete(chunk.file_id, chunk.put_endpoint, chunk.partition_count, batch)
        return Admission.NEW

    def _refused(self, chunk: Chunk, state: FileState, batch: BatchState) -> Admission:
        """``state`` is what refused the chunk, as the refusal found it."""
        try:
            admission = state.judge(chunk.partition, chunk.partition_count, chunk.ref, self._limits)
        except ChunkRejected:
            # Its bytes will never be assembled: a conflict, or a file given up (expired).
            self._remote.discard(chunk)
            raise
        if state.status.is_closed:
            self._remote.discard(chunk)  # a late duplicate: the file is finished without it
            return admission
        if state.is_complete and chunk.file_id not in batch.deferred:
            self.complete(chunk.file_id, chunk.put_endpoint, chunk.partition_count, batch)
        return admission

    def complete(
        self, file_id: FileId, put_endpoint: str, partition_count: int, batch: BatchState
    ) -> None:
        """Claim, assemble and upload a complete file; the outcome is noted in ``batch``.

        Whatever fails after the claim gives it back before the error goes on, so the next
        delivery may try at once instead of waiting out the lease.
        """
        now = self._clock()
        claim = self._state.claim(file_id, self._owner, now, now + self._lease_for(batch))
        if not claim.won:
            state = claim.refused_by
            if state is not None and not state.status.is_closed:
                # Another invocation assembles it now; if it dies, a redelivery takes over.
                batch.deferred.add(file_id)
            return
        try:
            finished = self._assemble_claimed(file_id, put_endpoint, partition_count, batch)
        except Exception:
            self._release(file_id, put_endpoint)
            raise
        if not finished:
            self._release(file_id, put_endpoint)
            batch.deferred.add(file_id)

    def _lease_for(self, batch: BatchState) -> float:
        """Until the invocation must have ended, when it says how long it has left: a
        redelivery then takes over right after a holder's timeout. CLAIM_LEASE_SECONDS
        bounds it, and is the lease when no invocation tells (``sfb redrive``)."""
        if batch.remaining is None:
            return self._lease
        return min(self._lease, max(batch.remaining(), 0.0) + LEASE_MARGIN_SECONDS)

    def _assemble_claimed(
        self, file_id: FileId, put_endpoint: str, partition_count: int, batch: BatchState
    ) -> bool:
        """False when the upload must be tried again later (the claim is to be given back)."""
        listing = self._remote.get(file_id)
        digests = self._state.digests(file_id)
        if listing is None or not listing.holds_digests(digests, partition_count):
            log.warning(
                "stored chunks do not match the shared state yet; assembly is retried",
                extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
            )
            return False
        assert listing is not None
        outcome = self._assemble(AssemblyPlan.from_remote(file_id, put_endpoint, listing))
        if outcome is FileOutcome.RETRY_LATER:
            return False
        status = FileStatus.UPLOADED if outcome is FileOutcome.UPLOADED else FileStatus.FAILED
        batch.finished.add(file_id)
        if not self._state.finish(file_id, self._owner, status, self._clock()):
            log.warning(
                "the claim expired before the file was closed; raise CLAIM_LEASE_SECONDS",
                extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
            )
            return True  # the claim's new holder owns the chunks now, and deletes them
        try:
            self._remote.delete(file_id, listing)
        except Exception as error:
            log.warning(
                "finished file's chunks could not be deleted; the pending/ lifecycle rule "
                "expires them",
                extra={"file_id": str(file_id), "reason": f"{type(error).__name__}: {error}"},
            )
        return True

    def _release(self, file_id: FileId, put_endpoint: str) -> None:
        """Never raises: a claim that cannot be given back lapses with its lease."""
        try:
            self._state.release(file_id, self._owner, self._clock())
        except Exception as error:
            log.warning(
                "the claim could not be given back; it lapses with its lease",
                extra={
                    "file_id": str(file_id),
                    "endpoint": redact(put_endpoint),
                    "reason": f"{type(error).__name__}: {error}",
                },
            )
