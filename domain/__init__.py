"""Pure rules of reassembling a file from partitioned chunks: no I/O lives here."""

from domain.assembled import AssembledFile
from domain.chunk import Chunk, ChunkRef
from domain.endpoint import FileId, redact
from domain.errors import (
    ChunkContentConflict,
    ChunkRejected,
    EndpointRefused,
    FileExpired,
    FileIncomplete,
    FileTooLarge,
    InvalidRecord,
    PartitionCountConflict,
    PartitionCountTooLarge,
    PartitionOutOfRange,
    RejectionReason,
)
from domain.expiry import ExpiredFile, IncompleteFile
from domain.file_state import DIGEST_PREFIX, FileState, FileStatus
from domain.limits import Limits
from domain.partition_set import Admission, PartitionSet

__all__ = [
    "DIGEST_PREFIX",
    "Admission",
    "AssembledFile",
    "Chunk",
    "ChunkContentConflict",
    "ChunkRef",
    "ChunkRejected",
    "EndpointRefused",
    "ExpiredFile",
    "FileExpired",
    "FileId",
    "FileIncomplete",
    "FileState",
    "FileStatus",
    "FileTooLarge",
    "IncompleteFile",
    "InvalidRecord",
    "Limits",
    "PartitionCountConflict",
    "PartitionCountTooLarge",
    "PartitionOutOfRange",
    "PartitionSet",
    "RejectionReason",
    "redact",
]
