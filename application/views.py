"""The operator's side of storage: what ``sfb status``, ``sfb redrive`` and the scheduled
expiry read and repair. Never on a record's hot path, so kept apart from the hot path's
ports (application/ports.py), as a read side is kept apart from a repository.

The same adapters satisfy both: S3ShardLog is a ShardLog and a ShardList (the local
backend's files are folded from it by application/log_files.py), DynamoDbFileStateStore a
FileStateStore and SharedFiles, S3RecordArchive a RecordArchive and FailedFiles.
"""

from __future__ import annotations

from typing import Protocol

from attrs import field, frozen

from application.ports import Body
from domain import ExpiredFile, FileId, IncompleteFile, redact


@frozen
class FileSummary:
    """One line of ``sfb status``."""

    file_id: FileId
    status: str
    received: int
    partition_count: int | None
    size: int
    since: float
    put_endpoint: str | None = field(default=None, repr=lambda e: redact(e) if e else "None")


class StoredFiles(Protocol):
    """The local backend's files, as remote storage holds them between batches."""

    def endpoint(self, file_id: FileId) -> str | None:
        """The noted putEndpoint, or None."""

    def files(self) -> list[FileSummary]:
        """Every file with chunks in storage: what ``sfb status`` lists."""


class ShardList(Protocol):
    """The local backend's shards, as its logs in remote storage show them."""

    def shards(self) -> list[str]:
        """Every shard with a snapshot or log entries (a listing: for operators only)."""


class SharedFiles(Protocol):
    """The dynamodb backend's files, as its table holds them."""

    def endpoint(self, file_id: FileId) -> str | None:
        """The putEndpoint of the file's first chunk, or None."""

    def unfinished(self) -> list[FileSummary]:
        """Every open file: collecting, or complete and not uploaded yet (for operators,
        never on the hot path). A failed or given-up file is listed from what is kept of it
        (failed/, expired/)."""

    def mark_redriven(self, file_id: FileId, now: float) -> None:
        """A failed file uploaded again by an operator is uploaded after all."""


class FailedFiles(Protocol):
    """Files whose upload was refused for good, kept under failed/ with their endpoint."""

    def failed_files(self) -> list[FileSummary]:
        """Every file kept as failed."""

    def failed_copy(self, file_id: FileId) -> tuple[str, Body] | None:
        """A kept file's putEndpoint and body, or None."""

    def drop_failed(self, file_id: FileId) -> None:
        """Forget a kept file once it has been uploaded after all."""


class IncompleteFiles(Protocol):
    """A state backend's files still collecting: what the scheduled expiry looks at.

    The local backend's state is its shards' logs (LoggedFiles); the dynamodb backend's is
    its table (DynamoDbFileStateStore).
    """

    def incomplete(self) -> list[IncompleteFile]:
        """Every file still collecting with partitions missing (complete ones are not listed:
        they can be redriven)."""

    def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
        """Stop collecting the file if it is still incomplete and was first seen before
        ``cutoff``; False when it completed or changed meanwhile, which wins.

        The file's chunks are left for ``PendingChunks.drop_file``.
        """

    def endpoint(self, file_id: FileId) -> str | None:
        """The file's putEndpoint, or None: for the log line, redacted."""


class PendingChunks(Protocol):
    """Remote storage of a file given up."""

    def drop_file(self, file_id: FileId) -> None:
        """Delete every object the file has under pending/ (its endpoint note included)."""


class ExpiryRecords(Protocol):
    """What is kept of files given up, for operators (``sfb status``) and for producers."""

    def keep_expired(self, record: ExpiredFile) -> str:
        """Keep the record (never an endpoint); return the key it was stored under."""

    def expired_files(self) -> list[FileSummary]:
        """Every kept record, with status ``expired``."""
