"""What operators do by hand: see what is not finished (``sfb status``) and finish it
(``sfb redrive``) without waiting for a record to arrive."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from application.batch_state import BatchState
from application.lifecycle import Completion, FileLifecycle
from application.pending import PendingFile
from application.ports import (
    Body,
    ExpiryRecords,
    FileStateStore,
    FileSummary,
    PermanentUploadError,
    RecordArchive,
    RemoteChunkStore,
    TransientUploadError,
    Uploader,
)
from application.shared_ingest import SharedIngestChunk
from domain import FileId, FileStatus, redact

log = logging.getLogger("sfb")


class FileReport:
    """Every file that is not finished: collecting, complete but not uploaded, or failed; and
    every file given up incomplete whose record is kept (``expired``)."""

    def __init__(
        self,
        remote: RemoteChunkStore,
        archive: RecordArchive,
        state: FileStateStore | None,
        expired: ExpiryRecords | None = None,
    ) -> None:
        self._remote = remote
        self._archive = archive
        self._state = state
        self._expired = expired

    def __call__(self) -> list[FileSummary]:
        if self._state is not None:
            # A failed or expired file is listed once, from what is kept of it.
            listed_elsewhere = (FileStatus.FAILED.value, FileStatus.EXPIRED.value)
            unfinished = [s for s in self._state.unfinished() if s.status not in listed_elsewhere]
        else:
            unfinished = self._remote.files()
        listed = unfinished + self._archive.failed_files()
        if self._expired is None:
            return listed
        # On the local backend a late chunk starts an expired file again: one row, the live one.
        live = {s.file_id for s in listed}
        return listed + [s for s in self._expired.expired_files() if s.file_id not in live]


class RedriveResult(Enum):
    UPLOADED = "uploaded"
    INCOMPLETE = "incomplete"
    NOT_FOUND = "not found"
    REFUSED = "refused again"
    RETRY_LATER = "failed again, try later"
    BUSY = "being assembled elsewhere"


class Redrive:
    """Upload again a file that failed for good, or finish a complete one that never was."""

    def __init__(
        self,
        remote: RemoteChunkStore,
        archive: RecordArchive,
        uploader: Uploader,
        lifecycle: FileLifecycle,
        shared: SharedIngestChunk | None,
        state: FileStateStore | None,
        clock: Callable[[], float],
    ) -> None:
        self._remote = remote
        self._archive = archive
        self._uploader = uploader
        self._lifecycle = lifecycle
        self._shared = shared
        self._state = state
        self._clock = clock

    def __call__(self, file_id: FileId) -> RedriveResult:
        kept = self._archive.failed_copy(file_id)
        if kept is not None:
            return self._failed_again(file_id, *kept)
        if self._shared is not None and self._state is not None:
            return self._shared_file(file_id, self._shared, self._state)
        return self._local_file(file_id)

    def all_failed(self) -> dict[FileId, RedriveResult]:
        return {summary.file_id: self(summary.file_id) for summary in self._archive.failed_files()}

    def _failed_again(self, file_id: FileId, put_endpoint: str, body: Body) -> RedriveResult:
        try:
            self._uploader.upload(put_endpoint, body)
        except TransientUploadError:
            return RedriveResult.RETRY_LATER
        except PermanentUploadError as error:
            log.error(
                "redrive refused again",
                extra={
                    "file_id": str(file_id),
                    "endpoint": redact(put_endpoint),
                    "reason": str(error),
                },
            )
            return RedriveResult.REFUSED
        self._archive.drop_failed(file_id)
        if self._state is not None:
            self._state.mark_redriven(file_id, self._clock())
        log.info(
            "failed file redriven",
            extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
        )
        return RedriveResult.UPLOADED

    def _local_file(self, file_id: FileId) -> RedriveResult:
        listing = self._remote.get(file_id)
        put_endpoint = self._remote.endpoint(file_id)
        if listing is None or put_endpoint is None:
            return RedriveResult.NOT_FOUND
        if not listing.is_complete:
            return RedriveResult.INCOMPLETE
        batch = BatchState(0)
        entry = PendingFile(
            file_id, put_endpoint, listing, durable=frozenset(listing.parts), checked_in=0
        )
        _, completion = self._lifecycle.complete(entry, batch)
        return {
            Completion.UPLOADED: RedriveResult.UPLOADED,
            Completion.FAILED: RedriveResult.REFUSED,
            Completion.DEFERRED: RedriveResult.RETRY_LATER,
            Completion.INCOMPLETE: RedriveResult.INCOMPLETE,
        }[completion]

    def _shared_file(
        self, file_id: FileId, shared: SharedIngestChunk, store: FileStateStore
    ) -> RedriveResult:
        state = store.read(file_id, 0)
        put_endpoint = store.endpoint(file_id)
        if state is None or put_endpoint is None:
            return RedriveResult.NOT_FOUND
        if state.status.is_closed:
            return RedriveResult.NOT_FOUND
        if not state.is_complete:
            return RedriveResult.INCOMPLETE
        batch = BatchState(0)
        shared.complete(file_id, put_endpoint, state.partition_count, batch)
        if file_id in batch.finished:
            after = store.read(file_id, 0)
            failed = after is not None and after.status is FileStatus.FAILED
            return RedriveResult.REFUSED if failed else RedriveResult.UPLOADED
        return RedriveResult.BUSY if file_id in batch.deferred else RedriveResult.RETRY_LATER
