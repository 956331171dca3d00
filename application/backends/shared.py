"""The shared (dynamodb, redis) backend: every chunk durable before an atomic state change
counts it (on dynamodb, the batch's chunks in one S3 object), so many shards, parallel
batches and concurrent containers agree; a file whose every partition is in the batch, and
that the shared state knows nothing of, goes whole (application/whole_files.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attrs import field, frozen

from application.backends import BatchEnd
from application.batch_state import BatchState
from application.outcomes import FileOutcome
from application.ports import FileStateStore
from application.shared_ingest import SharedIngestChunk
from application.views import FileSummary, SharedFiles
from application.whole_files import WholeBatch, WholeFiles
from domain import Admission, Chunk, FileId, FileStatus


@frozen(kw_only=True)
class SharedBackend:
    _ingest: SharedIngestChunk
    _state: FileStateStore
    _files: SharedFiles
    _clock: Callable[[], float]
    _whole: WholeFiles | None = None
    """None: every file takes the per-file path."""
    _batches: dict[int, WholeBatch] = field(factory=dict, init=False)
    """The whole files of the batch at hand, by its number, from ``prepare`` to ``end_batch``."""

    def begin(self, batch: BatchState) -> None:
        """Nothing to read before the chunks are known."""

    def prepare(self, chunks: Sequence[Chunk], batch: BatchState) -> frozenset[FileId]:
        """The whole files, and the rest of the chunks stored before any is admitted."""
        taken: frozenset[FileId] = frozenset()
        if self._whole is not None:
            whole = self._whole.start(chunks)
            self._batches[batch.number] = whole
            taken = whole.file_ids
        self._ingest.stage([chunk for chunk in chunks if chunk.file_id not in taken], batch)
        return taken

    def admit(self, chunk: Chunk, batch: BatchState) -> Admission:
        whole = self._batches.get(batch.number)
        if whole is not None and chunk.file_id in whole:
            return whole.admit(chunk, batch)
        return self._ingest(chunk, batch)

    def end_batch(self, batch: BatchState) -> BatchEnd:
        """Nothing to flush: each chunk was made durable before it was admitted, or its whole
        file was finished (or is reported whole). The batch's object is let go by the files
        that admitted nothing from it."""
        whole = self._batches.pop(batch.number, None)
        unfinished = whole.end() if whole is not None else frozenset()
        self._ingest.end(batch)
        return BatchEnd(not_durable=unfinished, retry=frozenset(batch.deferred - batch.finished))

    def unfinished(self) -> list[FileSummary]:
        return self._files.unfinished()  # a failed or expired file: from failed/, expired/

    def redrive(self, file_id: FileId) -> FileOutcome:
        """Through the same claim as a delivery: never two assemblers of one file."""
        state = self._state.read(file_id, 0)
        put_endpoint = self._files.endpoint(file_id)
        if state is None or put_endpoint is None or state.status.is_closed:
            return FileOutcome.NOT_FOUND
        if not state.is_complete:
            return FileOutcome.INCOMPLETE
        batch = BatchState(0)
        self._ingest.complete(file_id, put_endpoint, state.partition_count, batch)
        if file_id in batch.finished:
            after = self._state.read(file_id, 0)
            failed = after is not None and after.status is FileStatus.FAILED
            return FileOutcome.REFUSED if failed else FileOutcome.UPLOADED
        return FileOutcome.BUSY if file_id in batch.deferred else FileOutcome.RETRY_LATER

    def redriven(self, file_id: FileId) -> None:
        self._files.mark_redriven(file_id, self._clock())
