"""Files that stopped arriving: when one still incomplete is given up, and what is kept of it."""

from __future__ import annotations

from attrs import field, frozen

from domain.endpoint import FileId, redact


def _redacted(endpoint: str | None) -> str:
    return redact(endpoint) if endpoint else "None"


@frozen
class IncompleteFile:
    """A file still collecting: fewer partitions received than its partitionCount.

    ``first_seen`` is when its first chunk was stored (epoch seconds): the clock of
    INCOMPLETE_FILE_TTL_SECONDS starts there, not at its last chunk, so a trickle of
    chunks cannot keep a file that will never complete alive forever.
    """

    file_id: FileId
    partition_count: int
    received: int
    size: int
    first_seen: float
    put_endpoint: str | None = field(default=None, repr=_redacted)

    def age(self, now: float) -> float:
        return max(0.0, now - self.first_seen)

    def is_overdue(self, cutoff: float) -> bool:
        """First seen before ``cutoff`` (now less the TTL) and still missing partitions."""
        return self.first_seen < cutoff and self.received < self.partition_count


@frozen
class ExpiredFile:
    """What is kept of a file given up: enough to answer "what became of my file?".

    Never its endpoint: a presigned URL is a secret, and nothing but the failed/ copy of a
    file (which must be redriven to it) may hold one.
    """

    file_id: FileId
    partition_count: int
    received: int
    size: int
    first_seen: float
    expired_at: float
    backend: str

    @classmethod
    def of(cls, file: IncompleteFile, expired_at: float, backend: str) -> ExpiredFile:
        return cls(
            file.file_id,
            file.partition_count,
            file.received,
            file.size,
            file.first_seen,
            expired_at,
            backend,
        )
