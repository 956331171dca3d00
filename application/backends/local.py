"""The local backend: the seed's cache and TMP_DIR, with a log per shard in S3 that every
warm container on the shard folds (what is durable, what finished) and writes one object to
per invocation."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from application.backends import BatchEnd
from application.batch_state import BatchState
from application.flush import FlushPending
from application.ingest import IngestChunk
from application.lifecycle import FileLifecycle
from application.log_files import LoggedFiles
from application.outcomes import FileOutcome
from application.pending import PendingFile
from application.shard_book import ShardBook
from application.views import FileSummary
from domain import Admission, Chunk, FileId


@frozen(kw_only=True)
class LocalBackend:
    _ingest: IngestChunk
    _flush: FlushPending
    _lifecycle: FileLifecycle
    _stored: LoggedFiles
    _book: ShardBook

    def begin(self, batch: BatchState) -> None:
        """The shard's log is read while the records are validated."""
        self._book.prefetch(batch)

    def prepare(self, chunks: Sequence[Chunk], batch: BatchState) -> frozenset[FileId]:
        """Nothing to look up: a file completing inside its batch costs no request of its own."""
        return frozenset()

    def admit(self, chunk: Chunk, batch: BatchState) -> Admission:
        return self._ingest(chunk, batch)

    def end_batch(self, batch: BatchState) -> BatchEnd:
        """Flush: one entry in the shard's log holds what the batch leaves unfinished and
        the files it finished; files it could not hold are not durable."""
        self._book.read_done(batch)
        self._flush(batch)
        return BatchEnd(
            not_durable=frozenset(batch.not_durable),
            retry=frozenset(batch.deferred - batch.finished),
            late_rejections=tuple(batch.late_rejections),
        )

    def unfinished(self) -> list[FileSummary]:
        return self._stored.files()

    def redrive(self, file_id: FileId) -> FileOutcome:
        """From the entries that hold the file's chunks and the endpoint noted in the first."""
        found = self._stored.find(file_id)
        if found is None:
            return FileOutcome.NOT_FOUND
        batch, file = found
        if not file.is_complete:
            return FileOutcome.INCOMPLETE
        listing = file.listing()
        entry = PendingFile(
            file_id,
            file.put_endpoint,
            listing,
            durable=frozenset(listing.parts),
            checked_in=batch.number,
        )
        _, outcome = self._lifecycle.complete(entry, batch)
        if outcome.is_final:
            self._stored.note_finished(batch)
        return outcome

    def redriven(self, file_id: FileId) -> None:
        """Nothing but the failed/ copy held it, and the caller drops that."""
