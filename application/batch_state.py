"""What happened to each file during one batch, for the batch response."""

from __future__ import annotations

from collections.abc import Callable

from attrs import Factory, define, frozen

from domain import ChunkRejected, FileId, PartitionSet, ShardLedger


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
    remaining: Remaining | None = None
    """The seconds left in the invocation, when it tells; None outside one (``sfb redrive``)."""
    ledger: ShardLedger | None = None
    """The shard's ledger as read at the batch's first chunk (local backend), else None."""
    ledger_error: Exception | None = None
    """Why the ledger could not be read: every later chunk of the batch fails the same way."""
    keeps_ledger: bool = True
    """Finished files' pending objects wait for the shard's ledger to say so before they go
    (False outside a delivery, where no ledger is written: an operator's redrive)."""
    made_durable: set[FileId] = Factory(set)
    cleanup: dict[FileId, PartitionSet] = Factory(dict)
