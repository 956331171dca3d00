"""SharedIngestChunk: the DynamoDB backend's ingest, for many shards and parallel batches.

Each chunk is made durable in remote storage before the shared state counts it, so the state
never names bytes that could be lost. Exactly one invocation wins the claim to assemble a
complete file; a holder that dies is replaced once its lease has passed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from application.assemble import AssembleAndUpload, UploadResult
from application.batch_state import BatchState
from application.pending import PendingFile
from application.ports import FileStateStore, RemoteChunkStore
from domain import (
    DIGEST_PREFIX,
    Admission,
    Chunk,
    ChunkRejected,
    FileId,
    FileStatus,
    FileTooLarge,
    Limits,
    PartitionSet,
    redact,
)

log = logging.getLogger("sfb")


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
        received = self._state.add_chunk(
            chunk.file_id,
            chunk.partition,
            chunk.partition_count,
            chunk.ref,
            self._limits.max_file_bytes,
            self._clock(),
            chunk.put_endpoint,
        )
        if received is not None:
            if received == chunk.partition_count:
                self.complete(chunk.file_id, chunk.put_endpoint, chunk.partition_count, batch)
            return Admission.NEW
        return self._refused(chunk, batch)

    def _refused(self, chunk: Chunk, batch: BatchState) -> Admission:
        state = self._state.read(chunk.file_id, chunk.partition)
        if state is None:
            raise RuntimeError("the file's state vanished while a chunk was being added")
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
        """Claim, assemble and upload a complete file; the outcome is noted in ``batch``."""
        now = self._clock()
        if not self._state.claim(file_id, self._owner, now, now + self._lease):
            state = self._state.read(file_id, 0)
            if state is not None and not state.status.is_closed:
                # Another invocation assembles it now; if it dies, a redelivery takes over.
                batch.deferred.add(file_id)
            return
        listing = self._remote.get(file_id)
        digests = self._state.digests(file_id)
        if not _listing_matches(listing, digests, partition_count):
            log.warning(
                "stored chunks do not match the shared state yet; assembly is retried",
                extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
            )
            self._state.release(file_id, self._owner)
            batch.deferred.add(file_id)
            return
        assert listing is not None
        entry = PendingFile(file_id, put_endpoint, listing, durable=frozenset(listing.parts))
        result = self._assemble(entry)
        if result is UploadResult.RETRY_LATER:
            self._state.release(file_id, self._owner)
            batch.deferred.add(file_id)
            return
        status = FileStatus.UPLOADED if result is UploadResult.UPLOADED else FileStatus.FAILED
        batch.finished.add(file_id)
        if not self._state.finish(file_id, self._owner, status, self._clock()):
            log.warning(
                "the claim expired before the file was closed; raise CLAIM_LEASE_SECONDS",
                extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
            )
            return  # the claim's new holder owns the chunks now, and deletes them
        try:
            self._remote.delete(file_id, listing)
        except Exception as error:
            log.warning(
                "finished file's chunks could not be deleted; the pending/ lifecycle rule "
                "expires them",
                extra={"file_id": str(file_id), "reason": f"{type(error).__name__}: {error}"},
            )


def _listing_matches(listing: PartitionSet | None, digests: dict[int, str], count: int) -> bool:
    if listing is None or listing.partition_count != count or len(digests) != count:
        return False
    for partition, held in digests.items():
        ref = listing.parts.get(partition)
        if ref is None or ref.digest[:DIGEST_PREFIX] != held:
            return False
    return True
