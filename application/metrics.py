"""What the service counts, as a closed set; the Metrics port publishes it (EMF in Lambda)."""

from __future__ import annotations

from enum import Enum


class Metric(Enum):
    CHUNKS_ACCEPTED = ("ChunksAccepted", "Count")
    DUPLICATES = ("Duplicates", "Count")
    REJECTIONS = ("Rejections", "Count")
    FILES_COMPLETED = ("FilesCompleted", "Count")
    BYTES_UPLOADED = ("BytesUploaded", "Bytes")
    UPLOAD_RETRIES = ("UploadRetries", "Count")
    UPLOAD_LATENCY = ("UploadLatency", "Milliseconds")
    UPLOADS_FAILED = ("UploadsFailed", "Count")
    # Published by the scheduled expiry run: how many files are still collecting, the age
    # of the oldest, and how many were given up after INCOMPLETE_FILE_TTL_SECONDS.
    INCOMPLETE_FILES = ("IncompleteFiles", "Count")
    OLDEST_INCOMPLETE_FILE_AGE = ("OldestIncompleteFileAge", "Seconds")
    INCOMPLETE_FILES_EXPIRED = ("IncompleteFilesExpired", "Count")

    @property
    def metric_name(self) -> str:
        return self.value[0]

    @property
    def unit(self) -> str:
        return self.value[1]


class NoMetrics:
    """For callers that publish nothing (tests, the command line)."""

    def add(self, metric: Metric, value: float = 1.0, reason: str | None = None) -> None:
        return None

    def publish(self) -> None:
        return None
