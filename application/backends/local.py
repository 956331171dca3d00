"""The local backend: the seed's cache, TMP_DIR and pending chunks in S3, made correct for
warm containers that alternate on a shard by listing before trusting, and by the shard's
ledger (a finished file stays finished for every container)."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from application.backends import BatchEnd
from application.batch_state import BatchState
from application.flush import FlushPending
from application.ingest import IngestChunk
from application.lifecycle import FileLifecycle, ShardBook
from application.outcomes import FileOutcome
from application.pending import PendingFile
from application.ports import RemoteChunkStore
from application.views import FileSummary, StoredFiles
from domain import Admission, Chunk, FileId


@frozen(kw_only=True)
class LocalBackend:
    _ingest: IngestChunk
    _flush: FlushPending
    _book: ShardBook
    _lifecycle: FileLifecycle
    _remote: RemoteChunkStore
    _stored: StoredFiles

    def prepare(self, chunks: Sequence[Chunk], batch: BatchState) -> frozenset[FileId]:
        """Nothing to look up: a file completing inside its batch costs no request of its own."""
        return frozenset()

    def admit(self, chunk: Chunk, batch: BatchState) -> Admission:
        return self._ingest(chunk, batch)

    def end_batch(self, batch: BatchState) -> BatchEnd:
        """Flush, then note in the shard's ledger what the batch opened and finished: files
        the ledger could not note are not durable either."""
        self._flush(batch)
        unnoted = self._book.record(batch)
        return BatchEnd(
            not_durable=frozenset(batch.not_durable | unnoted),
            retry=frozenset(batch.deferred - batch.finished),
            late_rejections=tuple(batch.late_rejections),
        )

    def unfinished(self) -> list[FileSummary]:
        return self._stored.files()

    def redrive(self, file_id: FileId) -> FileOutcome:
        """From the pending chunks and the endpoint note stored beside them."""
        listing = self._remote.get(file_id)
        put_endpoint = self._stored.endpoint(file_id)
        if listing is None or put_endpoint is None:
            return FileOutcome.NOT_FOUND
        if not listing.is_complete:
            return FileOutcome.INCOMPLETE
        entry = PendingFile(
            file_id, put_endpoint, listing, durable=frozenset(listing.parts), checked_in=0
        )
        _, outcome = self._lifecycle.complete(entry, BatchState(0, keeps_ledger=False))
        return outcome

    def redriven(self, file_id: FileId) -> None:
        """Nothing but the failed/ copy held it, and the caller drops that."""
