"""ProcessBatch: one Kinesis batch in, the sequence numbers to redeliver out.

A record counts as processed only once its chunk is durable, its file is finished, or it was
rejected and quarantined. Lambda restarts a shard from the lowest reported sequence number,
so the first record that is not processed and every record after it are reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from attrs import define

from application.backends import BatchEnd, StateBackend
from application.batch_state import BatchState, Remaining
from application.lanes import FileLanes
from application.metrics import Metric, NoMetrics
from application.ports import EndpointPolicy, Metrics, RecordArchive, RequestValidator
from application.records import StreamRecord
from domain import Admission, Chunk, ChunkRejected, FileId, redact, shard_of

log = logging.getLogger("sfb")


@define
class _Tracked:
    index: int
    record: StreamRecord
    file_id: FileId
    partition: int
    endpoint: str


@define
class _Refused:
    """Why a record makes no chunk: a rejection (quarantined) or an error (redelivered)."""

    error: Exception
    endpoint: str


@define
class _Valid:
    """A record that passed validation and the endpoint policy, waiting for its lane."""

    index: int
    record: StreamRecord
    chunk: Chunk


class _Gate:
    """Whether a record's work may start, with the invocation's time left: once fewer than
    the margin are left, no record is taken any more and the time is not asked again; the
    first record always goes, so a shard always moves. Lanes ask it at once.

    A file taken whole is decided once, at its first record, and its other records follow:
    a part of it would be neither finished nor durable.
    """

    def __init__(self, remaining: Remaining | None, margin: float, whole: frozenset[FileId]):
        self._remaining = remaining
        self._margin = margin
        self._whole = whole
        self._decided: dict[FileId, bool] = {}  # each file's entry written by its lane only
        self._out_of_time = threading.Event()
        self._lock = threading.Lock()

    def goes(self, index: int, record: StreamRecord, file_id: FileId | None) -> bool:
        if file_id is None or file_id not in self._whole:
            return self._asked(index, record)
        decided = self._decided.get(file_id)
        if decided is None:
            decided = self._decided[file_id] = self._asked(index, record)
        return decided

    def _asked(self, index: int, record: StreamRecord) -> bool:
        goes = index == 0 or not (self._out_of_time.is_set() or self._near())
        if not goes:
            self._stop(record)
        return goes

    def _near(self) -> bool:
        return self._remaining is not None and self._remaining() < self._margin

    def _stop(self, record: StreamRecord) -> None:
        with self._lock:
            if self._out_of_time.is_set():
                return
            self._out_of_time.set()
        log.warning(
            "deadline near: the records not yet taken are left for redelivery",
            extra={"sequence_number": record.sequence_number},
        )


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
        lanes: FileLanes | None = None,
    ) -> None:
        self._validator = validator
        self._policy = policy
        self._backend = backend
        self._archive = archive
        self._margin = deadline_margin
        self._metrics = metrics or NoMetrics()
        self._lanes = lanes or FileLanes()
        self._batches = 0

    def __call__(
        self, records: Sequence[StreamRecord], remaining: Remaining | None = None
    ) -> list[str]:
        """Return the sequence numbers Kinesis must deliver again, in batch order.

        ``remaining`` tells the seconds left before the invocation is killed: once fewer
        than the margin are left, the rest of the batch is left for redelivery (the first
        record is always processed, so a shard always moves). The batch hands it to the
        backend, for what must not outlast the invocation (a claim's lease).

        The backend may start a read meanwhile (``begin``: the local backend's log). Records
        are validated in batch order (no writes), the backend sees the valid chunks
        (``prepare``), then they are admitted file by file: each file's records in order,
        different files at once (FileLanes). The time left is asked once a record, before
        its work: with lanes, a valid record's in its lane, where the uploads take the time,
        and a refused one's before its quarantine is written. A file the backend takes whole
        is asked for once, at its first record, and its other records follow that answer.
        """
        self._batches += 1
        shard = shard_of(records[0].source) if records else ""
        stream = records[0].stream if records else ""
        batch = BatchState(self._batches, shard=shard, stream=stream, remaining=remaining)
        if records:
            self._backend.begin(batch)
        checked = [(index, record, self._validate(record)) for index, record in enumerate(records)]
        chunks = [chunk for _, _, chunk in checked if isinstance(chunk, Chunk)]
        gate = _Gate(remaining, self._margin, self._backend.prepare(chunks, batch))
        failed: set[str] = set()
        valid: list[_Valid] = []
        tracked: list[_Tracked] = []
        one_by_one = self._lanes.concurrency == 1
        for index, record, chunk in checked:
            if isinstance(chunk, _Refused):
                if not gate.goes(index, record, None) or not self._refuse(record, chunk):
                    failed.add(record.sequence_number)
            elif one_by_one:  # one record after the other, as they came
                item = _Valid(index, record, chunk)
                if not gate.goes(index, record, chunk.file_id) or not self._admit(
                    item, batch, tracked
                ):
                    failed.add(record.sequence_number)
            else:
                valid.append(_Valid(index, record, chunk))

        def admit(item: _Valid) -> None:
            goes = gate.goes(item.index, item.record, item.chunk.file_id)
            if not goes or not self._admit(item, batch, tracked):
                failed.add(item.record.sequence_number)

        self._lanes.run(valid, lambda item: item.chunk.file_id, admit)
        tracked.sort(key=lambda item: item.index)
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

    def _validate(self, record: StreamRecord) -> Chunk | _Refused:
        """The record's chunk, or why not; writes nothing."""
        endpoint = ""
        try:
            if record.unusable is not None:  # the decoder could make no payload of it
                raise record.unusable.rejection()
            chunk = self._validator.validate(record.data)
            endpoint = chunk.put_endpoint
            self._policy.check(chunk.put_endpoint)
        except Exception as error:
            return _Refused(error, endpoint)
        return chunk

    def _refuse(self, record: StreamRecord, refused: _Refused) -> bool:
        """Quarantine a rejected record (True) or leave it for redelivery (False)."""
        endpoint = refused.endpoint
        if isinstance(refused.error, ChunkRejected):
            file_id = FileId.for_endpoint(endpoint) if endpoint else None
            return self._reject(record, refused.error, file_id, endpoint)
        return self._not_now(record, refused.error, None, endpoint)

    def _admit(self, item: _Valid, batch: BatchState, tracked: list[_Tracked]) -> bool:
        """Hand one chunk to the backend; False when its record must be delivered again."""
        chunk, record = item.chunk, item.record
        try:
            admission = self._backend.admit(chunk, batch)
        except ChunkRejected as rejection:
            return self._reject(record, rejection, chunk.file_id, chunk.put_endpoint)
        except Exception as error:
            return self._not_now(record, error, chunk.file_id, chunk.put_endpoint)
        self._metrics.add(
            Metric.CHUNKS_ACCEPTED if admission is Admission.NEW else Metric.DUPLICATES
        )
        tracked.append(
            _Tracked(item.index, record, chunk.file_id, chunk.partition, chunk.put_endpoint)
        )
        return True

    @staticmethod
    def _not_now(
        record: StreamRecord, error: Exception, file_id: FileId | None, endpoint: str
    ) -> bool:
        """Not an answer about the record (an S3 outage, a name lookup that could not be made
        now): it is delivered again, never quarantined."""
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
