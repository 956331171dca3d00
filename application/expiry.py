"""ExpireIncompleteFiles: give up files still incomplete INCOMPLETE_FILE_TTL_SECONDS after their
first chunk, so a producer's loss is reported (an ERROR line, a record, a metric) instead of
vanishing silently under the S3 lifecycle rule and the DynamoDB TTL, which stay as a safety
net beyond it.

Run on a schedule (the ``expire`` Lambda handler) or by hand (``sfb expire``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from attrs import evolve, frozen

from application.metrics import Metric, NoMetrics
from application.ports import Metrics
from application.views import ExpiryRecords, IncompleteFiles, PendingChunks
from domain import ExpiredFile, FileId, IncompleteFile, redact

log = logging.getLogger("sfb")


@frozen
class ExpiryRun:
    """What one run saw and did; in a dry run, ``expired`` is what would have been given up."""

    now: float
    incomplete: int
    oldest_age: float
    expired: tuple[IncompleteFile, ...] = ()
    failed: tuple[FileId, ...] = ()
    dry_run: bool = False


class ExpireIncompleteFiles:
    """Each overdue file is given up by its backend first (dynamodb: one conditional update,
    so of it and a chunk completing the file, whichever DynamoDB applies first wins), then
    its record is kept, then its chunks are deleted: a run that dies midway leaves at worst
    chunks for the pending/ lifecycle rule (dynamodb) or a file the next run gives up again
    (local), never a file half given up that could still be assembled.
    """

    def __init__(
        self,
        files: IncompleteFiles,
        chunks: PendingChunks,
        records: ExpiryRecords,
        clock: Callable[[], float],
        ttl_seconds: float,
        backend: str,
        metrics: Metrics | None = None,
    ) -> None:
        self._files = files
        self._chunks = chunks
        self._records = records
        self._clock = clock
        self._ttl = ttl_seconds
        self._backend = backend
        self._metrics = metrics or NoMetrics()

    def __call__(self, dry_run: bool = False) -> ExpiryRun:
        """A dry run changes nothing and publishes nothing: it only says what is overdue."""
        now = self._clock()
        cutoff = now - self._ttl
        incomplete = self._files.incomplete()
        oldest = max((f.age(now) for f in incomplete), default=0.0)
        overdue = sorted(
            (f for f in incomplete if f.is_overdue(cutoff)), key=lambda f: f.first_seen
        )
        expired: list[IncompleteFile] = []
        failed: list[FileId] = []
        for candidate in overdue:
            file = candidate
            try:
                if file.put_endpoint is None:
                    file = evolve(file, put_endpoint=self._files.endpoint(file.file_id))
                if not dry_run and not self._files.give_up(file, cutoff, now):
                    continue  # it completed (or another run gave it up) meanwhile
            except Exception as error:
                _error(
                    "incomplete file could not be given up; the next run tries again",
                    file,
                    reason=f"{type(error).__name__}: {error}",
                )
                failed.append(file.file_id)
                continue
            expired.append(file)
            if not dry_run and not self._finish(file, now):
                failed.append(file.file_id)
        if not dry_run:
            self._metrics.add(Metric.INCOMPLETE_FILES, len(incomplete))
            self._metrics.add(Metric.OLDEST_INCOMPLETE_FILE_AGE, oldest)
            self._metrics.add(Metric.INCOMPLETE_FILES_EXPIRED, len(expired))
            self._metrics.publish()
        return ExpiryRun(now, len(incomplete), oldest, tuple(expired), tuple(failed), dry_run)

    def _finish(self, file: IncompleteFile, now: float) -> bool:
        """Report the file given up, keep its record, delete its chunks."""
        _error(
            "incomplete file given up",
            file,
            received=file.received,
            partition_count=file.partition_count,
            age_seconds=round(file.age(now)),
            reason=f"{file.received} of {file.partition_count} partitions "
            f"{round(self._ttl)} s after its first chunk (INCOMPLETE_FILE_TTL_SECONDS)",
        )
        try:
            self._records.keep_expired(ExpiredFile.of(file, now, self._backend))
            self._chunks.drop_file(file.file_id)
        except Exception as error:
            _error(
                "given-up file's record or chunk deletion failed; chunks left under pending/ "
                "go with its lifecycle rule",
                file,
                reason=f"{type(error).__name__}: {error}",
            )
            return False
        return True


def _error(message: str, file: IncompleteFile, **fields: object) -> None:
    endpoint = redact(file.put_endpoint) if file.put_endpoint else None
    log.error(message, extra={"file_id": str(file.file_id), "endpoint": endpoint, **fields})
