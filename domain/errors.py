"""Why a record is rejected: each error names its reason, never the secret endpoint."""

from __future__ import annotations

from enum import StrEnum


class RejectionReason(StrEnum):
    NOT_BASE64 = "data-not-base64"
    NOT_JSON = "data-not-json"
    SCHEMA = "schema-violation"
    CONTENT_NOT_BASE64 = "content-not-base64"
    PARTITION_OUT_OF_RANGE = "partition-out-of-range"
    PARTITION_COUNT_TOO_LARGE = "partition-count-too-large"
    PARTITION_COUNT_CONFLICT = "partition-count-conflict"
    CONTENT_CONFLICT = "content-conflict"
    FILE_TOO_LARGE = "file-too-large"
    ENDPOINT_REFUSED = "endpoint-refused"
    ENDPOINT_INVALID = "endpoint-invalid"
    FILE_EXPIRED = "file-expired"
    KPL_AGGREGATE_UNREADABLE = "kpl-aggregate-unreadable"
    KPL_USER_RECORD_UNUSABLE = "kpl-user-record-unusable"


class ChunkRejected(Exception):
    """A record that can never be processed: logged, quarantined, and checkpointed."""

    reason: RejectionReason = RejectionReason.SCHEMA
    shown_endpoint: str | None = None
    """The redacted endpoint for the log line, when only the rejection knows it."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRecord(ChunkRejected):
    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class PartitionOutOfRange(ChunkRejected):
    reason = RejectionReason.PARTITION_OUT_OF_RANGE


class PartitionCountTooLarge(ChunkRejected):
    reason = RejectionReason.PARTITION_COUNT_TOO_LARGE


class PartitionCountConflict(ChunkRejected):
    reason = RejectionReason.PARTITION_COUNT_CONFLICT

    @classmethod
    def against(cls, partition_count: int, first: int) -> PartitionCountConflict:
        return cls(f"partitionCount {partition_count} contradicts the earlier {first}")


class ChunkContentConflict(ChunkRejected):
    reason = RejectionReason.CONTENT_CONFLICT

    @classmethod
    def at(cls, partition: int) -> ChunkContentConflict:
        return cls(f"partition {partition} was already received with other bytes")


class FileTooLarge(ChunkRejected):
    reason = RejectionReason.FILE_TOO_LARGE


class EndpointRefused(ChunkRejected):
    reason = RejectionReason.ENDPOINT_REFUSED


class InvalidEndpoint(EndpointRefused):
    """A putEndpoint some later step could not read, or would read another host from.

    Its detail names what is wrong, never the endpoint: it goes into quarantine metadata.
    """

    reason = RejectionReason.ENDPOINT_INVALID

    def __init__(self, detail: str, shown_endpoint: str | None = None) -> None:
        super().__init__(detail)
        self.shown_endpoint = shown_endpoint


class FileExpired(ChunkRejected):
    """A chunk of a file given up after INCOMPLETE_FILE_TTL_SECONDS: it can never complete."""

    reason = RejectionReason.FILE_EXPIRED


class FileIncomplete(Exception):
    """Assembly was asked of a file that still misses partitions: a programming error."""
