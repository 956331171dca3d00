"""Pure rules of reassembling a file from partitioned chunks: no I/O lives here."""

from domain.assembled import AssembledFile
from domain.chunk import Chunk, ChunkRef
from domain.endpoint import FileId, redact
from domain.errors import (
    ChunkContentConflict,
    ChunkRejected,
    EndpointRefused,
    FileIncomplete,
    FileTooLarge,
    InvalidRecord,
    PartitionCountConflict,
    PartitionCountTooLarge,
    PartitionOutOfRange,
    RejectionReason,
)
from domain.limits import Limits
from domain.partition_set import Admission, PartitionSet

__all__ = [
    "Admission",
    "AssembledFile",
    "Chunk",
    "ChunkContentConflict",
    "ChunkRef",
    "ChunkRejected",
    "EndpointRefused",
    "FileId",
    "FileIncomplete",
    "FileTooLarge",
    "InvalidRecord",
    "Limits",
    "PartitionCountConflict",
    "PartitionCountTooLarge",
    "PartitionOutOfRange",
    "PartitionSet",
    "RejectionReason",
    "redact",
]
