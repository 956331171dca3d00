"""What happened to each file during one batch, for the batch response."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future

from attrs import Factory, define, frozen

from domain import ChunkRejected, FileId, ShardLedger


@frozen
class LateRejection:
    """A chunk accepted earlier in the batch, then found to contradict remote storage."""

    file_id: FileId
    partition: int
    error: ChunkRejected


Remaining = Callable[[], float]
"""Seconds left in the invocation."""


@define
class BatchState:
    number: int
    finished: set[FileId] = Factory(set)
    deferred: set[FileId] = Factory(set)
    not_durable: set[FileId] = Factory(set)
    late_rejections: list[LateRejection] = Factory(list)
    shard: str = ""
    stream: str = ""
    """The stream's ARN, when the records name it: a new shard's parents are looked up there."""
    remaining: Remaining | None = None
    """The seconds left in the invocation, when it tells; None outside one (``sfb redrive``)."""
    ledger: ShardLedger | None = None
    """The shard's state as its log stood at the batch's first chunk, and as the batch's own
    writes moved it (local backend), else None."""
    ledger_error: Exception | None = None
    """Why the log could not be read: every later chunk of the batch fails the same way."""
    reading: Future[None] | None = None
    """The log's read begun while the records are validated: the batch ends after it."""
