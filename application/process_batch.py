"""ProcessBatch: one Kinesis batch in, the sequence numbers to redeliver out.

A record counts as processed only once its chunk is durable, its file is finished, or it was
rejected and quarantined. Lambda restarts a shard from the lowest reported sequence number,
so the first record that is not processed and every record after it are reported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from attrs import define

from application.backends import BatchEnd, StateBackend
from application.batch_state import BatchState, Remaining
from application.metrics import Metric, NoMetrics
from application.ports import EndpointPolicy, Metrics, RecordArchive, RequestValidator
from application.records import StreamRecord
from domain import Admission, ChunkRejected, FileId, redact, shard_of

log = logging.getLogger("sfb")


@define
class _Tracked:
    record: StreamRecord
    file_id: FileId
    partition: int
    endpoint: str


class ProcessBatch:
    def __init__(
        self,
        *,
        validator: RequestValidator,
        policy: EndpointPolicy,
        backend: StateBackend,
        archive: RecordArchive,
        deadline_margin: float = 10.0,
        metrics: Metrics | None = None,
    ) -> None:
        self._validator = validator
        self._policy = policy
        self._backend = backend
        self._archive = archive
        self._margin = deadline_margin
        self._metrics = metrics or NoMetrics()
        self._batches = 0

    def __call__(
        self, records: Sequence[StreamRecord], remaining: Remaining | None = None
    ) -> list[str]:
        """Return the sequence numbers Kinesis must deliver again, in batch order.

        ``remaining`` tells the seconds left before the invocation is killed: once fewer
        than the margin are left, the rest of the batch is left for redelivery (the first
        record is always processed, so a shard always moves). The batch hands it to the
        backend, for what must not outlast the invocation (a claim's lease).
        """
        self._batches += 1
        shard = shard_of(records[0].source) if records else ""
        batch = BatchState(self._batches, shard=shard, remaining=remaining)
        failed: set[str] = set()
        tracked: list[_Tracked] = []
        for index, record in enumerate(records):
            if index and remaining is not None and remaining() < self._margin:
                log.warning(
                    "deadline near: the rest of the batch is left for redelivery",
                    extra={"sequence_number": record.sequence_number, "left": len(records) - index},
                )
                failed.update(r.sequence_number for r in records[index:])
                break
            if not self._process(record, batch, tracked):
                failed.add(record.sequence_number)

        failed |= self._settle(self._backend.end_batch(batch), tracked)
        self._metrics.publish()
        return self._reported(records, failed)

    @staticmethod
    def _reported(records: Sequence[StreamRecord], failed: set[str]) -> list[str]:
        first = next(
            (i for i, record in enumerate(records) if record.sequence_number in failed), None
        )
        if first is None:
            return []
        # User records unpacked from one aggregated Kinesis record share its sequence number.
        return list(dict.fromkeys(record.sequence_number for record in records[first:]))

    def _process(self, record: StreamRecord, batch: BatchState, tracked: list[_Tracked]) -> bool:
        """Validate and ingest one record; False when it must be delivered again."""
        file_id: FileId | None = None
        endpoint = ""
        try:
            if record.unusable is not None:  # the decoder could make no payload of it
                raise record.unusable.rejection()
            chunk = self._validator.validate(record.data)
            file_id, endpoint = chunk.file_id, chunk.put_endpoint
            self._policy.check(chunk.put_endpoint)
            admission = self._backend.admit(chunk, batch)
            self._metrics.add(
                Metric.CHUNKS_ACCEPTED if admission is Admission.NEW else Metric.DUPLICATES
            )
            tracked.append(_Tracked(record, chunk.file_id, chunk.partition, endpoint))
        except ChunkRejected as rejection:
            return self._reject(record, rejection, file_id, endpoint)
        except Exception as error:
            # Not an answer about the record (an S3 outage, a name lookup that could not be
            # made now): it is delivered again, never quarantined.
            log.error(
                "record could not be processed; it will be delivered again",
                extra={
                    "sequence_number": record.sequence_number,
                    "file_id": str(file_id) if file_id else None,
                    "endpoint": redact(endpoint) if endpoint else None,
                    "reason": f"{type(error).__name__}: {error}",
                },
            )
            return False
        return True

    def _settle(self, end: BatchEnd, tracked: list[_Tracked]) -> set[str]:
        """Sequence numbers of accepted records whose work is not durable after all."""
        late = {(r.file_id, r.partition): r.error for r in end.late_rejections}
        failed: set[str] = set()
        last_of_file: dict[FileId, str] = {}
        for item in tracked:
            error = late.get((item.file_id, item.partition))
            if error is not None:
                if not self._reject(item.record, error, item.file_id, item.endpoint):
                    failed.add(item.record.sequence_number)
                continue
            if item.file_id in end.not_durable:
                failed.add(item.record.sequence_number)
            last_of_file[item.file_id] = item.record.sequence_number
        # A complete file whose upload must be retried: its last record brings it back.
        failed.update(last_of_file[f] for f in end.retry if f in last_of_file)
        return failed

    def _reject(
        self, record: StreamRecord, rejection: ChunkRejected, file_id: FileId | None, endpoint: str
    ) -> bool:
        """Log and quarantine; return False when the quarantine could not be written."""
        fields = {
            "sequence_number": record.sequence_number,
            "sub_sequence": record.sub_sequence,
            "reason": rejection.reason.value,
            "detail": rejection.detail,
            "file_id": str(file_id) if file_id else None,
            # An endpoint refused as invalid made no chunk: the rejection shows it, redacted.
            "endpoint": redact(endpoint) if endpoint else rejection.shown_endpoint,
        }
        try:
            key = self._archive.quarantine(record, rejection.reason, rejection.detail, file_id)
        except Exception as error:
            log.error(
                "record rejected but could not be quarantined; it will be delivered again",
                extra={**fields, "error": f"{type(error).__name__}: {error}"},
            )
            return False
        log.warning("record rejected", extra={**fields, "quarantined_as": key})
        self._metrics.add(Metric.REJECTIONS, reason=rejection.reason.value)
        return True
