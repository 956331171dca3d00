"""A file's state as shared by every container, and how to read a refused chunk against it."""

from __future__ import annotations

from enum import Enum
from functools import cached_property

from attrs import field, frozen

from domain.chunk import Chunk, ChunkRef
from domain.endpoint import FileId, redact
from domain.errors import FileExpired
from domain.limits import Limits
from domain.partition_set import Admission, admit


class FileStatus(Enum):
    COLLECTING = "collecting"
    ASSEMBLING = "assembling"
    UPLOADED = "uploaded"
    FAILED = "failed"
    EXPIRED = "expired"
    """Given up while still incomplete, INCOMPLETE_FILE_TTL_SECONDS after its first chunk."""

    @property
    def is_closed(self) -> bool:
        return self in (FileStatus.UPLOADED, FileStatus.FAILED, FileStatus.EXPIRED)


@frozen
class FileState:
    """What the shared store holds for a file, seen for one partition of it."""

    partition_count: int
    received: int
    size: int
    status: FileStatus
    held_digest: str | None = None

    @property
    def is_complete(self) -> bool:
        return self.received == self.partition_count

    def judge(
        self, partition: int, partition_count: int, ref: ChunkRef, limits: Limits
    ) -> Admission:
        """Why the store refused to add a chunk: a duplicate, or a conflict raised by ``admit``.

        A closed file takes nothing more: whatever arrives late at a finished file is a
        duplicate of the past, but a chunk of a file given up incomplete is rejected, so that
        its producer's loss is seen (quarantined, counted) rather than silently absorbed.
        """
        if self.status is FileStatus.EXPIRED:
            raise FileExpired(
                f"the file was given up with {self.received} of {self.partition_count} "
                "partitions before this chunk arrived"
            )
        if self.status.is_closed:
            return Admission.DUPLICATE
        admission = admit(self, partition, partition_count, ref, limits)
        if admission is Admission.DUPLICATE:
            return admission
        raise RuntimeError(f"the state store refused partition {partition} for no known reason")

    def holds_same(self, partition: int, ref: ChunkRef) -> bool | None:
        """By digest prefix: the state is seen for one partition, the one it was read for."""
        return None if self.held_digest is None else ref.digest_prefix == self.held_digest


@frozen
class Claim:
    """The answer to a claim: won, or refused, with the file's state as the refusal found it
    (None when the store does not know the file), so no second request asks why."""

    won: bool
    refused_by: FileState | None = None


@frozen
class PartitionArrival:
    """A partition arriving at the shared state, with what recording it depends on.

    The store records it only for a collecting file of the same partitionCount that does not
    hold the partition yet and has room for it under ``max_file_bytes``; the file's first
    chunk also leaves its putEndpoint and first-seen time there.
    """

    put_endpoint: str = field(repr=redact)
    partition: int
    partition_count: int
    ref: ChunkRef
    max_file_bytes: int
    now: float

    @classmethod
    def of(cls, chunk: Chunk, limits: Limits, now: float) -> PartitionArrival:
        return cls(
            chunk.put_endpoint,
            chunk.partition,
            chunk.partition_count,
            chunk.ref,
            limits.max_file_bytes,
            now,
        )

    @cached_property
    def file_id(self) -> FileId:
        return FileId.for_endpoint(self.put_endpoint)

    @property
    def room(self) -> int:
        """The most bytes the file may hold already for this partition still to fit."""
        return self.max_file_bytes - self.ref.size
