"""A file's state as shared by every container, and how to read a refused chunk against it."""

from __future__ import annotations

from enum import Enum

from attrs import frozen

from domain.chunk import ChunkRef
from domain.errors import ChunkContentConflict, FileExpired, PartitionCountConflict
from domain.limits import Limits
from domain.partition_set import Admission


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


DIGEST_PREFIX = 32
"""Hex digits of a chunk's sha256 kept in shared state: 128 bits, small enough for 15,000."""


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
        """Why the store refused to add a chunk: a duplicate, or a conflict raised.

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
        if partition_count != self.partition_count:
            raise PartitionCountConflict.against(partition_count, self.partition_count)
        if self.held_digest is not None:
            if ref.digest[:DIGEST_PREFIX] != self.held_digest:
                raise ChunkContentConflict.at(partition)
            return Admission.DUPLICATE
        limits.check_growth(self.size, ref.size)
        raise RuntimeError(f"the state store refused partition {partition} for no known reason")
