"""AssembleAndUpload: stream a complete file from wherever its chunks are to its endpoint."""

from __future__ import annotations

import io
import logging
import time
from functools import partial

from application.body import AssembledBody, ChunkUnavailable, Part
from application.metrics import Metric, NoMetrics
from application.outcomes import FileOutcome
from application.plan import AssemblyPlan
from application.ports import (
    ChunkSource,
    LocalChunkStore,
    Metrics,
    PermanentUploadError,
    RecordArchive,
    TransientUploadError,
    Uploader,
)
from domain import AssembledFile, ChunkRef, redact

log = logging.getLogger("sfb")


class AssembleAndUpload:
    def __init__(
        self,
        local: LocalChunkStore,
        remote: ChunkSource,
        uploader: Uploader,
        archive: RecordArchive,
        metrics: Metrics | None = None,
        read_ahead: int = 1,
    ) -> None:
        """``read_ahead``: parts fetched and checked at once while the upload streams (the
        ASSEMBLY_READ_AHEAD setting); 1 reads them one after another."""
        self._local = local
        self._remote = remote
        self._uploader = uploader
        self._archive = archive
        self._metrics = metrics or NoMetrics()
        self._read_ahead = read_ahead

    def __call__(self, entry: AssemblyPlan) -> FileOutcome:
        """UPLOADED, REFUSED (kept under failed/) or RETRY_LATER."""
        assembled = AssembledFile.from_partitions(
            entry.file_id, entry.put_endpoint, entry.partitions
        )
        body = self.body(entry, assembled)
        remote = {p: ref for p, ref in enumerate(assembled.parts) if p not in entry.local}
        self._remote.assembling(entry.file_id, remote)
        try:
            return self._upload(entry, assembled, body)
        finally:
            self._remote.assembled(entry.file_id)

    def _upload(
        self, entry: AssemblyPlan, assembled: AssembledFile, body: AssembledBody
    ) -> FileOutcome:
        fields = {
            "file_id": str(entry.file_id),
            "endpoint": redact(entry.put_endpoint),
            "bytes": assembled.size,
        }
        started = time.monotonic()
        try:
            self._uploader.upload(entry.put_endpoint, body)
        except (TransientUploadError, ChunkUnavailable) as error:
            log.warning(
                "upload failed; the file stays complete and is retried on redelivery",
                extra={**fields, "reason": str(error)},
            )
            return FileOutcome.RETRY_LATER
        except PermanentUploadError as error:
            key = self._archive.keep_failed(assembled, body)
            self._metrics.add(Metric.UPLOADS_FAILED)
            log.error(
                "upload refused for good; the assembled file is kept",
                extra={**fields, "reason": str(error), "kept_as": key},
            )
            return FileOutcome.REFUSED
        self._metrics.add(Metric.FILES_COMPLETED)
        self._metrics.add(Metric.BYTES_UPLOADED, assembled.size)
        self._metrics.add(Metric.UPLOAD_LATENCY, (time.monotonic() - started) * 1000)
        log.info("file uploaded", extra=fields)
        return FileOutcome.UPLOADED

    def body(self, entry: AssemblyPlan, assembled: AssembledFile) -> AssembledBody:
        """Each part is read from this container's disk when it is there, else from remote.

        Bytes still in memory since this batch hashed them on arrival are not hashed again
        (their length still is); bytes read back from disk or remote storage are, before any
        of them is sent. Every part goes through the same read-ahead window, whichever copy
        it comes from: S3 round trips overlap, and so do disk reads and hashing (hashlib lets
        go of the GIL), while the order and the memory bound stay one rule.
        """
        return AssembledBody(
            tuple(
                self._part(entry, partition, ref) for partition, ref in enumerate(assembled.parts)
            ),
            read_ahead=self._read_ahead,
        )

    def _part(self, entry: AssemblyPlan, partition: int, ref: ChunkRef) -> Part:
        count = entry.partitions.partition_count
        remote = partial(self._remote.open, entry.file_id, partition, count, ref)
        if partition not in entry.local:
            return Part(ref, remote)
        held = self._local.held(entry.file_id, partition)
        if held is not None:
            return Part(ref, partial(io.BytesIO, held), verify=False)
        # A durable chunk whose disk copy fails is read from remote storage instead.
        fallback = remote if partition in entry.durable else None
        return Part(ref, partial(self._local.open, entry.file_id, partition), fallback=fallback)
