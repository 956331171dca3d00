"""`sfb publish` and `sfb consume`: a real Kinesis stream, for local use and the demo.

publish batches PutRecords (500 records or 5 MB a call), refuses before sending anything a
record over Kinesis' 1 MiB limit, and sends again the entries Kinesis refused; consume reads
every shard and feeds each shard's batches to its own container, one batch at a time, each
cut as Lambda cuts it (BATCH_SIZE records, or fewer where the event would pass 6 MB),
starting again at the lowest reported sequence number as Lambda does.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from attrs import define, field

from domain import FileId
from entrypoints.events import (
    BATCH_SIZE,
    encode_payload,
    fitting,
    kinesis_event,
    kinesis_record,
)

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import PutRecordsRequestEntryTypeDef

MAX_RECORDS_PER_CALL = 500
MAX_BYTES_PER_CALL = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
"""Kinesis' limit on one record: its data (the payload JSON) and its partition key together."""
Invoke = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class Progress:
    """A one-line progress bar on a terminal; elsewhere (a CI log) one line at the end."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = total
        self._done = 0
        self._stream = stream if stream is not None else sys.stderr

    def advance(self, count: int = 1) -> None:
        self._done += count
        if not self._stream.isatty():
            return
        if self._total is None:
            self._stream.write(f"\r{self._label:8} {self._done} records")
        else:
            filled = int(30 * min(self._done, self._total) / max(self._total, 1))
            bar = "#" * filled + "." * (30 - filled)
            self._stream.write(f"\r{self._label:8} [{bar}] {self._done}/{self._total}")
        self._stream.flush()

    def close(self) -> None:
        if not self._stream.isatty():
            total = f"/{self._total}" if self._total is not None else ""
            self._stream.write(f"{self._label:8} {self._done}{total} records")
        self._stream.write("\n")
        self._stream.flush()


class PublishFailed(RuntimeError):
    """Kinesis kept refusing some records after every retry."""


class RecordTooLarge(ValueError):
    """A record Kinesis would refuse for its size: said before anything is sent, so that a
    file is never left half published."""


def partition_key(payload: Mapping[str, Any], spread: bool = False) -> str:
    """The file id, so one shard carries the file; with ``spread``, one key per partition."""
    key = str(FileId.for_endpoint(payload["putEndpoint"]))
    return f"{key}-{payload['partition']}" if spread else key


def record_bytes(payload: Mapping[str, Any], spread: bool = False) -> int:
    """What the record counts against MAX_RECORD_BYTES: payload JSON plus partition key."""
    # The base64 content needs no escaping: its length adds as it is, without encoding it.
    shell = encode_payload({**payload, "content": ""})
    return len(shell) + len(payload["content"]) + len(partition_key(payload, spread).encode())


def largest_record_bytes(size: int, put_endpoint: str, chunk_size: int, spread: bool) -> int:
    """The largest record a file of ``size`` bytes makes when cut in ``chunk_size`` chunks.

    The last full chunk has the longest partition number; the final one may be shorter.
    """
    count = max(1, -(-size // chunk_size))
    largest = 0
    for partition in {max(0, count - 2), count - 1}:
        piece = max(0, min(chunk_size, size - partition * chunk_size))
        payload = {
            "putEndpoint": put_endpoint,
            "partition": partition,
            "partitionCount": count,
            "content": "A" * (4 * -(-piece // 3)),
        }
        largest = max(largest, record_bytes(payload, spread))
    return largest


def check_chunk_size(size: int, put_endpoint: str, chunk_size: int, spread: bool) -> None:
    """Raise RecordTooLarge, naming the largest chunk size that fits, when a record of this
    file would be over MAX_RECORD_BYTES; the endpoint itself is never quoted (it may be
    presigned)."""
    largest = largest_record_bytes(size, put_endpoint, chunk_size, spread)
    if largest <= MAX_RECORD_BYTES:
        return
    fitting = largest_fitting_chunk_size(size, put_endpoint, chunk_size, spread)
    advice = (
        f"the largest chunk size that fits with this endpoint is {fitting}"
        if fitting
        else "no chunk size fits with this endpoint"
    )
    raise RecordTooLarge(
        f"chunk size {chunk_size} makes records of up to {largest} bytes (payload JSON and "
        f"partition key), over Kinesis' limit of {MAX_RECORD_BYTES} bytes a record; {advice}"
    )


def largest_fitting_chunk_size(size: int, put_endpoint: str, below: int, spread: bool) -> int:
    """The largest chunk size under ``below`` whose records all fit; 0 when none does."""

    def fits(chunk_size: int) -> bool:
        return largest_record_bytes(size, put_endpoint, chunk_size, spread) <= MAX_RECORD_BYTES

    low, high = 0, below  # fits(low) or low == 0; not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    # Record size grows with the chunk size but for the digit a smaller partitionCount saves:
    # a few sizes past the boundary may fit again, never more than 3 base64 quanta past it.
    return max((c for c in range(low + 1, min(below, low + 13)) if fits(c)), default=low)


def publish(
    client: KinesisClient,
    stream: str,
    payloads: Sequence[dict[str, Any]],
    spread: bool = False,
    attempts: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress | None = None,
) -> int:
    """Put every payload on the stream; return how many records were put.

    By default all chunks of a file share one partition key (its file id), so one shard
    carries the file, as the local backend wants; ``spread`` scatters them over shards.
    """
    for payload in payloads:
        if (record_size := record_bytes(payload, spread)) > MAX_RECORD_BYTES:
            raise RecordTooLarge(
                f"partition {payload['partition']} of file {partition_key(payload)} makes a "
                f"record of {record_size} bytes, over Kinesis' limit of {MAX_RECORD_BYTES}; "
                "nothing was sent"
            )
    batch: list[PutRecordsRequestEntryTypeDef] = []
    size = 0
    for payload in payloads:
        data = encode_payload(payload)
        key = partition_key(payload, spread)
        if batch and (
            len(batch) == MAX_RECORDS_PER_CALL or size + len(data) + len(key) > MAX_BYTES_PER_CALL
        ):
            _put(client, stream, batch, attempts, sleep, progress)
            batch, size = [], 0
        batch.append({"Data": data, "PartitionKey": key})
        size += len(data) + len(key)
    if batch:
        _put(client, stream, batch, attempts, sleep, progress)
    return len(payloads)


def _put(
    client: KinesisClient,
    stream: str,
    batch: list[PutRecordsRequestEntryTypeDef],
    attempts: int,
    sleep: Callable[[float], None],
    progress: Progress | None,
) -> None:
    pending = batch
    for attempt in range(attempts):
        response = client.put_records(StreamName=stream, Records=pending)
        refused = [
            entry
            for entry, result in zip(pending, response["Records"], strict=True)
            if result.get("ErrorCode")
        ]
        if progress is not None:
            progress.advance(len(pending) - len(refused))
        if not refused:
            return
        pending = refused
        sleep(random.uniform(0, 0.1 * 2**attempt))  # jitter, not a secret
    raise PublishFailed(f"Kinesis refused {len(pending)} records after {attempts} attempts")


@define
class ShardReader:
    shard_id: str
    invoke: Invoke
    iterator: str | None
    done: bool = False
    delivered: int = 0
    redelivered: int = 0


@define
class ConsumeReport:
    batches: int = 0
    records: int = 0
    redelivered: int = 0
    shards: dict[str, int] = field(factory=dict)


def consume(
    client: KinesisClient,
    stream: str,
    container_for: Callable[[str], Invoke],
    batch_size: int = BATCH_SIZE,
    max_batches: int = 100_000,
    progress: Progress | None = None,
) -> ConsumeReport:
    """Read every shard to its end, one batch per shard in turn; raise if stuck."""
    arn = client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    readers = [
        ShardReader(
            shard["ShardId"],
            container_for(shard["ShardId"]),
            client.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"],
        )
        for shard in _shards(client, stream)
    ]
    report = ConsumeReport()
    while not all(reader.done for reader in readers):
        for reader in readers:
            if reader.done or reader.iterator is None:
                reader.done = True
                continue
            if report.batches >= max_batches:
                raise RuntimeError(f"shard {reader.shard_id} still not drained")
            _step(client, stream, arn, reader, batch_size, report, progress)
    report.shards = {reader.shard_id: reader.delivered for reader in readers}
    return report


def _shards(client: KinesisClient, stream: str) -> list[dict[str, Any]]:
    shards: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"StreamName": stream}
    while True:
        page = client.list_shards(**kwargs)
        shards.extend(dict(s) for s in page["Shards"])
        token = page.get("NextToken")
        if not token:
            return shards
        kwargs = {"NextToken": token}


def _step(
    client: KinesisClient,
    stream: str,
    arn: str,
    reader: ShardReader,
    batch_size: int,
    report: ConsumeReport,
    progress: Progress | None,
) -> None:
    assert reader.iterator is not None
    page = client.get_records(ShardIterator=reader.iterator, Limit=batch_size)
    records = page["Records"]
    if not records:
        reader.iterator = page.get("NextShardIterator")
        reader.done = page.get("MillisBehindLatest", 0) == 0
        return
    made = [
        kinesis_record(
            bytes(r["Data"]),
            r["SequenceNumber"],
            partition_key=r["PartitionKey"],
            shard_id=reader.shard_id,
            stream_arn=arn,
        )
        for r in records
    ]
    # Lambda cuts a batch at its payload cap: the records past it come in the next event.
    taken = fitting(made)
    response = reader.invoke(kinesis_event(made[:taken]))
    report.batches += 1
    report.records += taken
    failed = [f.get("itemIdentifier") for f in response.get("batchItemFailures") or []]
    sequences = [r["SequenceNumber"] for r in records[:taken]]
    if not failed and taken == len(records):
        reader.delivered += taken
        reader.iterator = page.get("NextShardIterator")
        if progress is not None:
            progress.advance(taken)
        return
    if any(s not in sequences for s in failed):
        lowest = 0  # a null, empty or unknown identifier: Lambda retries the whole batch
    else:
        lowest = min((sequences.index(s) for s in failed), default=taken)
    reader.delivered += lowest
    report.redelivered += taken - lowest
    if progress is not None:
        progress.advance(lowest)
    reader.iterator = client.get_shard_iterator(
        StreamName=stream,
        ShardId=reader.shard_id,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=records[lowest]["SequenceNumber"],
    )["ShardIterator"]


def shuffled_with_duplicates(
    payloads: Iterable[dict[str, Any]], rng: random.Random, duplicate_share: float = 0.2
) -> list[dict[str, Any]]:
    """What a retrying producer puts on a stream: some chunks twice, in no order."""
    chosen = list(payloads)
    sent = chosen + rng.sample(chosen, k=int(len(chosen) * duplicate_share))
    rng.shuffle(sent)
    return sent
