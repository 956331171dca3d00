"""SharedIngestChunk: the shared backends' ingest, for many shards and parallel batches.

Each chunk is made durable in remote storage before the shared state counts it, so the state
never names bytes that could be lost: on the dynamodb backend, the batch's chunks in one
object before any is admitted (``stage``, application/chunk_objects.py); on the redis backend,
each chunk as it comes. Exactly one invocation wins the claim to assemble a
complete file; a holder that fails gives the claim back at once, and one that dies is
replaced once its lease has passed: when its invocation must have ended, if it knew that.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from attrs import Factory, define

from application.assemble import AssembleAndUpload
from application.batch_state import BatchState
from application.chunk_objects import COUNTED_TOGETHER_MOST, ChunkKey, StoredChunks, chunk_key
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
    PartitionSet,
    redact,
)

log = logging.getLogger("sfb")

LEASE_MARGIN_SECONDS = 5.0
"""Added to the invocation's remaining time for a claim's lease: clock differences between
hosts, and the claim's own request."""


@define
class _Staged:
    """One batch's chunks of the per-file path, stored before any was admitted."""

    where: dict[ChunkKey, str] = Factory(dict)
    """The object holding each chunk."""
    error: Exception | None = None
    """Why they could not be stored: their records are delivered again."""
    holds: dict[tuple[str, FileId], bool] = Factory(dict)
    """Whether a file holds an object: it admitted a chunk from it, or an add whose answer
    never came may have. Each file's entries are written by its own lane only."""
    admitted: set[ChunkKey] = Factory(set)
    """Chunks admitted in this batch: the same record again in it is a duplicate."""
    files: dict[FileId, list[Chunk]] = Factory(dict)
    """The stored chunks by file, in the batch's order: what one request may count at once."""
    place: dict[ChunkKey, int] = Factory(dict)
    """Each stored chunk's place in its file's list."""
    counted: set[ChunkKey] = Factory(set)
    """Chunks counted along with an earlier chunk of their file, not yet admitted."""

    def companions(self, chunk: Chunk, object_id: str) -> list[Chunk]:
        """The file's next new chunks in the batch, to count with ``chunk`` in one request:
        up to the first that would be judged on its own (another partition count, a partition
        met again, another object), so that what comes first still stands first."""
        at = self.place.get(chunk_key(chunk))
        if at is None:
            return []
        run: list[Chunk] = []
        seen = {chunk.partition}
        for other in self.files[chunk.file_id][at + 1 :]:
            key = chunk_key(other)
            if (
                key in self.admitted
                or key in self.counted
                or self.where.get(key) != object_id
                or other.partition_count != chunk.partition_count
                or other.partition in seen
                or len(run) + 1 == COUNTED_TOGETHER_MOST
            ):
                break
            seen.add(other.partition)
            run.append(other)
        return run


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
        objects: StoredChunks | None = None,
    ) -> None:
        """``objects``: the dynamodb backend's chunk objects; None stores each chunk in
        ``remote`` as it comes (the redis backend)."""
        self._remote = remote
        self._state = state
        self._assemble = assemble
        self._limits = limits
        self._owner = owner
        self._lease = lease_seconds
        self._clock = clock
        self._objects = objects
        self._staged: dict[int, _Staged] = {}
        self._lock = threading.Lock()

    def _check(self, chunk: Chunk) -> None:
        self._limits.check_partition_count(chunk.partition_count)
        if chunk.ref.size > self._limits.max_file_bytes:
            raise FileTooLarge(
                f"a {chunk.ref.size}-byte chunk is over MAX_FILE_BYTES "
                f"{self._limits.max_file_bytes}"
            )

    def stage(self, chunks: Sequence[Chunk], batch: BatchState) -> None:
        """Store the batch's chunks of the per-file path in one object, before any is
        admitted; never raises (a chunk that could not be stored raises when admitted)."""
        if self._objects is None:
            return
        wanted = []
        for chunk in chunks:
            try:
                self._check(chunk)
            except ChunkRejected:
                continue  # rejected when admitted, before it would be stored
            wanted.append(chunk)
        staged = _Staged()
        if wanted:
            try:
                staged.where = self._objects.store(wanted)
            except Exception as error:
                staged.error = error
            else:
                for key, chunk in {chunk_key(chunk): chunk for chunk in wanted}.items():
                    in_file = staged.files.setdefault(chunk.file_id, [])
                    staged.place[key] = len(in_file)
                    in_file.append(chunk)
        with self._lock:
            self._staged[batch.number] = staged

    def end(self, batch: BatchState) -> None:
        """The batch's files that admitted nothing from an object give it up. Never raises:
        an object that cannot be given up is left to the pending/ lifecycle rule."""
        with self._lock:
            staged = self._staged.pop(batch.number, None)
        if staged is None or self._objects is None:
            return
        files: dict[str, set[FileId]] = {}
        for (file_id, _, _), object_id in staged.where.items():
            files.setdefault(object_id, set()).add(file_id)
        for object_id, in_it in files.items():
            unneeded = {f for f in in_it if not staged.holds.get((object_id, f), False)}
            if not unneeded:
                continue
            try:
                self._objects.unneeded(object_id, unneeded)
            except Exception as error:
                log.warning(
                    "a chunk object's unadmitted files could not be let go; the pending/ "
                    "lifecycle rule expires it",
                    extra={"files": len(unneeded), "reason": f"{type(error).__name__}: {error}"},
                )

    def __call__(self, chunk: Chunk, batch: BatchState) -> Admission:
        """Raises a domain.ChunkRejected when the chunk contradicts the shared state."""
        self._check(chunk)
        arrival = PartitionArrival.of(chunk, self._limits, self._clock())
        if self._objects is None:
            self._remote.put([chunk])
            added = self._state.add_chunk(arrival)
        else:
            staged = self._staged_for(chunk, batch)
            key = chunk_key(chunk)
            if key in staged.admitted:
                return Admission.DUPLICATE  # an earlier record of this batch admitted it
            if key in staged.counted:
                staged.counted.discard(key)
                staged.admitted.add(key)
                return Admission.NEW  # counted with an earlier chunk of its file
            added = self._add_stored(self._objects, staged, chunk, arrival)
        if isinstance(added, FileState):
            return self._refused(chunk, added, batch)
        if added == chunk.partition_count:
            self.complete(chunk.file_id, chunk.put_endpoint, chunk.partition_count, batch)
        return Admission.NEW

    def _staged_for(self, chunk: Chunk, batch: BatchState) -> _Staged:
        """The batch's stored chunks, with this one: a chunk ``stage`` did not see is stored
        now, alone."""
        with self._lock:
            staged = self._staged.setdefault(batch.number, _Staged())
        if chunk_key(chunk) in staged.where:
            return staged
        if staged.error is not None:
            raise staged.error
        assert self._objects is not None
        where = self._objects.store([chunk])
        with self._lock:
            staged.where.update(where)
        return staged

    def _add_stored(
        self, objects: StoredChunks, staged: _Staged, chunk: Chunk, arrival: PartitionArrival
    ) -> int | FileState:
        """Count the chunk with its object, together with the file's other new chunks of the
        batch when the state takes them all (one request a file a batch, not one a chunk);
        alone otherwise. The file holds the object from before the request (its answer may
        be lost) until a refusal says it took nothing from it."""
        key = chunk_key(chunk)
        object_id = staged.where[key]
        holds = (object_id, chunk.file_id)
        before = staged.holds.get(holds, False)
        staged.holds[holds] = True
        companions = staged.companions(chunk, object_id)
        if companions:
            arrivals = [PartitionArrival.of(c, self._limits, arrival.now) for c in companions]
            counted = objects.add_together([arrival, *arrivals], object_id)
            if counted is not None:
                staged.admitted.add(key)
                staged.counted.update(chunk_key(c) for c in companions)
                return counted
        added = objects.add(arrival, object_id)
        if isinstance(added, FileState):
            staged.holds[holds] = before
        else:
            staged.admitted.add(key)
        return added

    def _refused(self, chunk: Chunk, state: FileState, batch: BatchState) -> Admission:
        """``state`` is what refused the chunk, as the refusal found it."""
        try:
            admission = state.judge(chunk.partition, chunk.partition_count, chunk.ref, self._limits)
        except ChunkRejected:
            # Its bytes will never be assembled: a conflict, or a file given up (expired).
            self._discard(chunk)
            raise
        if state.status.is_closed:
            self._discard(chunk)  # a late duplicate: the file is finished without it
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

    def _discard(self, chunk: Chunk) -> None:
        """A refused chunk's own object goes; one in a batch's object is let go at the
        batch's end."""
        if self._objects is None:
            self._remote.discard(chunk)

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
        listing, object_ids = self._stored(file_id, partition_count)
        if listing is None:
            log.warning(
                "stored chunks do not match the shared state yet; assembly is retried",
                extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
            )
            return False
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
            if self._objects is None:
                self._remote.delete(file_id, listing)
            else:
                self._objects.release(file_id, object_ids)
        except Exception as error:
            log.warning(
                "finished file's chunks could not be deleted; the pending/ lifecycle rule "
                "expires them",
                extra={"file_id": str(file_id), "reason": f"{type(error).__name__}: {error}"},
            )
        return True

    def _stored(
        self, file_id: FileId, partition_count: int
    ) -> tuple[PartitionSet | None, set[str]]:
        """The file's stored chunks, exactly as the shared state counted them, and the
        objects holding them; None when they do not match (yet)."""
        if self._objects is not None:
            return self._objects.listing(file_id, partition_count)
        listing = self._remote.get(file_id)
        digests = self._state.digests(file_id)
        if listing is None or not listing.holds_digests(digests, partition_count):
            return None, set()
        return listing, set()

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
