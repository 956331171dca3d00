"""The seam between ProcessBatch (and the operator commands) and where file state lives.

Each backend is one obvious place: ``local`` (the seed's design: cache, TMP_DIR, pending
chunks in S3, a ledger per shard) and ``shared`` (DynamoDB: atomic state for many shards
and parallel batches). The container picks one by STATE_BACKEND.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from attrs import frozen

from application.batch_state import BatchState, LateRejection
from application.outcomes import FileOutcome
from application.views import FileSummary
from domain import Admission, Chunk, FileId


@frozen
class BatchEnd:
    """What a backend says of a batch once it ended: all ProcessBatch needs for its answer."""

    not_durable: frozenset[FileId] = frozenset()
    """Files whose records must all be delivered again: their work is not durable."""
    retry: frozenset[FileId] = frozenset()
    """Complete files whose upload must be tried again: their last record brings them back."""
    late_rejections: tuple[LateRejection, ...] = ()
    """Chunks accepted earlier in the batch, then found to contradict what is stored."""


class StateBackend(Protocol):
    def begin(self, batch: BatchState) -> None:
        """The batch has records: start what needs no record (a read), while they are
        validated. Never raises: what fails is the batch's, raised where it is needed."""

    def prepare(self, chunks: Sequence[Chunk], batch: BatchState) -> frozenset[FileId]:
        """See the batch's valid chunks, in batch order, before any is admitted.

        Returns the files the backend takes whole: none of their chunks is durable before
        the file is finished, so their records are admitted all or none (ProcessBatch asks
        the time left once, at a file's first record) and, should the file not finish, all
        reported (``BatchEnd.not_durable``).
        """

    def admit(self, chunk: Chunk, batch: BatchState) -> Admission:
        """Take a valid chunk: NEW or DUPLICATE; finishes its file when it completes it.

        Raises a domain.ChunkRejected when the chunk contradicts what is held, and any other
        exception when its work could not be made durable (the record is delivered again).
        """

    def end_batch(self, batch: BatchState) -> BatchEnd:
        """Make durable what the batch leaves unfinished, and say what it came to."""

    def unfinished(self) -> list[FileSummary]:
        """Files with chunks held and no final answer yet: what ``sfb status`` lists first."""

    def redrive(self, file_id: FileId) -> FileOutcome:
        """Finish a complete file that has no failed/ copy, now."""

    def redriven(self, file_id: FileId) -> None:
        """A failed file was uploaded by hand from its failed/ copy: note it finished."""
