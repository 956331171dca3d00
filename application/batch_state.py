"""What happened to each file during one batch, for the batch response."""

from __future__ import annotations

from attrs import Factory, define, frozen

from domain import ChunkRejected, FileId


@frozen
class LateRejection:
    """A chunk accepted earlier in the batch, then found to contradict remote storage."""

    file_id: FileId
    partition: int
    error: ChunkRejected


@define
class BatchState:
    number: int
    finished: set[FileId] = Factory(set)
    deferred: set[FileId] = Factory(set)
    not_durable: set[FileId] = Factory(set)
    late_rejections: list[LateRejection] = Factory(list)
