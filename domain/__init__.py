"""Pure rules of reassembling a file from partitioned chunks: no I/O lives here."""

from domain.assembled import AssembledFile
from domain.chunk import DIGEST_PREFIX, Chunk, ChunkRef
from domain.endpoint import MAX_ENDPOINT_BYTES, Endpoint, FileId, redact
from domain.errors import (
    ChunkContentConflict,
    ChunkRejected,
    EndpointRefused,
    FileExpired,
    FileIncomplete,
    FileTooLarge,
    InvalidEndpoint,
    InvalidRecord,
    PartitionCountConflict,
    PartitionCountTooLarge,
    PartitionOutOfRange,
    RejectionReason,
)
from domain.expiry import ExpiredFile, IncompleteFile
from domain.file_state import Claim, FileState, FileStatus, PartitionArrival
from domain.limits import Limits
from domain.partition_set import Admission, PartitionSet
from domain.shard_ledger import (
    LiveEntry,
    LogEntry,
    LoggedChunk,
    LoggedFile,
    ShardLedger,
    StoredChunk,
    shard_of,
)

__all__ = [
    "DIGEST_PREFIX",
    "MAX_ENDPOINT_BYTES",
    "Admission",
    "AssembledFile",
    "Chunk",
    "ChunkContentConflict",
    "ChunkRef",
    "ChunkRejected",
    "Claim",
    "Endpoint",
    "EndpointRefused",
    "ExpiredFile",
    "FileExpired",
    "FileId",
    "FileIncomplete",
    "FileState",
    "FileStatus",
    "FileTooLarge",
    "IncompleteFile",
    "InvalidEndpoint",
    "InvalidRecord",
    "Limits",
    "LiveEntry",
    "LogEntry",
    "LoggedChunk",
    "LoggedFile",
    "PartitionArrival",
    "PartitionCountConflict",
    "PartitionCountTooLarge",
    "PartitionOutOfRange",
    "PartitionSet",
    "RejectionReason",
    "ShardLedger",
    "StoredChunk",
    "redact",
    "shard_of",
]
