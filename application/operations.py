"""What operators do by hand: see what is not finished (``sfb status``) and finish it
(``sfb redrive``) without waiting for a record to arrive."""

from __future__ import annotations

import logging

from application.backends import StateBackend
from application.outcomes import FileOutcome
from application.ports import (
    Body,
    PermanentUploadError,
    TransientUploadError,
    Uploader,
)
from application.views import ExpiryRecords, FailedFiles, FileSummary
from domain import FileId, redact

log = logging.getLogger("sfb")


class FileReport:
    """Every file that is not finished: collecting, complete but not uploaded, or failed; and
    every file given up incomplete whose record is kept (``expired``)."""

    def __init__(self, backend: StateBackend, archive: FailedFiles, expired: ExpiryRecords) -> None:
        self._backend = backend
        self._archive = archive
        self._expired = expired

    def __call__(self) -> list[FileSummary]:
        listed = self._backend.unfinished() + self._archive.failed_files()
        # On the local backend a late chunk starts an expired file again: one row, the live one.
        live = {s.file_id for s in listed}
        return listed + [s for s in self._expired.expired_files() if s.file_id not in live]


class Redrive:
    """Upload again a file that failed for good, or finish a complete one that never was."""

    def __init__(self, backend: StateBackend, archive: FailedFiles, uploader: Uploader) -> None:
        self._backend = backend
        self._archive = archive
        self._uploader = uploader

    def __call__(self, file_id: FileId) -> FileOutcome:
        kept = self._archive.failed_copy(file_id)
        if kept is not None:
            return self._failed_again(file_id, *kept)
        return self._backend.redrive(file_id)

    def all_failed(self) -> dict[FileId, FileOutcome]:
        return {summary.file_id: self(summary.file_id) for summary in self._archive.failed_files()}

    def _failed_again(self, file_id: FileId, put_endpoint: str, body: Body) -> FileOutcome:
        try:
            self._uploader.upload(put_endpoint, body)
        except TransientUploadError:
            return FileOutcome.RETRY_LATER
        except PermanentUploadError as error:
            log.error(
                "redrive refused again",
                extra={
                    "file_id": str(file_id),
                    "endpoint": redact(put_endpoint),
                    "reason": str(error),
                },
            )
            return FileOutcome.REFUSED
        self._archive.drop_failed(file_id)
        self._backend.redriven(file_id)
        log.info(
            "failed file redriven",
            extra={"file_id": str(file_id), "endpoint": redact(put_endpoint)},
        )
        return FileOutcome.UPLOADED
