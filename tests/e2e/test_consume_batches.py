"""`sfb consume` cuts a shard's records into events as Lambda's event source mapping does: at
most BatchSize records, and never an event over Lambda's 6 MB payload cap, on Kinesis on
moto's server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import boto3
import pytest

from entrypoints.events import (
    BATCH_SIZE,
    INVOCATION_PAYLOAD_LIMIT,
    fitting,
    kinesis_event,
    kinesis_record,
    sequence_number,
)
from entrypoints.streams import Invoke, consume

CHUNK_RECORD = 950_000
"""About a 700 KiB chunk's record: its content base64 inside the payload's JSON."""


class Recorder:
    """The shard's container: each event it is handed, and the failures it reports once."""

    def __init__(self, fail_once: dict[int, int] | None = None) -> None:
        self.events: list[Mapping[str, Any]] = []
        self._fail_once = dict(fail_once or {})
        """Event number → the index of the record that event reports failed."""

    def __call__(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        self.events.append(event)
        index = self._fail_once.pop(len(self.events) - 1, None)
        if index is None:
            return {"batchItemFailures": []}
        failed = event["Records"][index]["kinesis"]["sequenceNumber"]
        return {"batchItemFailures": [{"itemIdentifier": failed}]}

    def sequences(self) -> list[list[str]]:
        return [[r["kinesis"]["sequenceNumber"] for r in e["Records"]] for e in self.events]


def _stream_with(sizes: list[int]) -> tuple[str, list[str]]:
    """A one-shard stream holding a record of each size, and their sequence numbers."""
    kinesis = boto3.client("kinesis")
    name = f"cut-{uuid.uuid4().hex[:12]}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name)
    put = [
        kinesis.put_record(StreamName=name, Data=bytes([n % 251]) * size, PartitionKey="pk")
        for n, size in enumerate(sizes)
    ]
    return name, [answer["SequenceNumber"] for answer in put]


def _consume(name: str, recorder: Invoke, batch_size: int = BATCH_SIZE) -> Any:
    def container_for(shard: str) -> Invoke:
        return recorder

    return consume(boto3.client("kinesis"), name, container_for, batch_size)


@pytest.mark.parametrize(
    ("sizes", "most_records"),
    [
        ([CHUNK_RECORD] * 10, 4),  # large chunks: four an event, whatever BatchSize says
        ([CHUNK_RECORD, 500, CHUNK_RECORD, 500] * 3 + [500] * 5, None),
        ([2_000] * 250, BATCH_SIZE),  # small files: BatchSize an event
    ],
    ids=["large chunks", "large and small", "small files"],
)
def test_each_event_stays_under_the_payload_cap_and_every_record_comes_once_in_order(
    aws_env: str, sizes: list[int], most_records: int | None
) -> None:
    name, sequences = _stream_with(sizes)
    recorder = Recorder()

    report = _consume(name, recorder)

    delivered = [s for event in recorder.sequences() for s in event]
    assert delivered == sequences
    assert all(len(json.dumps(e)) <= INVOCATION_PAYLOAD_LIMIT for e in recorder.events)
    if most_records is not None:
        assert max(len(e["Records"]) for e in recorder.events) == most_records
    # Full events: each one ends where the next record would not have fitted.
    for event, following in zip(recorder.events, recorder.events[1:], strict=False):
        if len(event["Records"]) < BATCH_SIZE:
            wider = kinesis_event([*event["Records"], following["Records"][0]])
            assert len(json.dumps(wider)) > INVOCATION_PAYLOAD_LIMIT
    assert (report.records, report.redelivered) == (len(sizes), 0)


def test_a_reported_failure_is_read_again_from_it_and_records_past_a_cut_are_not_redelivered(
    aws_env: str,
) -> None:
    name, sequences = _stream_with([CHUNK_RECORD] * 10)
    recorder = Recorder(fail_once={0: 1})  # the first event reports its second record

    report = _consume(name, recorder)

    events = recorder.sequences()
    assert events[0] == sequences[0:4]
    assert events[1][0] == sequences[1]  # read again from the failed record
    assert [s for event in events[1:] for s in event] == sequences[1:]
    assert report.redelivered == 3  # the failed record and the two after it in its event


class Answering:
    """A container whose first answer is ``first``, and every later one a success."""

    def __init__(self, first: Mapping[str, Any]) -> None:
        self.first: Mapping[str, Any] | None = first
        self.events: list[Mapping[str, Any]] = []

    def __call__(self, event: Mapping[str, Any]) -> Mapping[str, Any]:
        self.events.append(event)
        answer, self.first = self.first or {}, None
        return answer


@pytest.mark.parametrize(
    ("answer", "again"),
    [
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, True),
        ({"batchItemFailures": [{"sequenceNumber": "1"}]}, True),
        ({"batchItemFailures": [{"itemIdentifier": "49590000"}]}, True),
        ({"batchItemFailures": []}, False),
        ({"batchItemFailures": None}, False),
        ({}, False),
    ],
    ids=["empty", "null", "wrong key", "not in the batch", "none", "null list", "no list"],
)
def test_an_answer_lambda_counts_as_a_whole_failure_reads_the_batch_again(
    aws_env: str, answer: Mapping[str, Any], again: bool
) -> None:
    name, sequences = _stream_with([2_000] * 5)
    container = Answering(answer)

    report = _consume(name, container)

    delivered = [[r["kinesis"]["sequenceNumber"] for r in e["Records"]] for e in container.events]
    assert delivered == ([sequences, sequences] if again else [sequences])
    assert report.redelivered == (5 if again else 0)


def test_a_smaller_batch_size_caps_each_event_below_the_payload_cap(aws_env: str) -> None:
    name, sequences = _stream_with([2_000] * 25)
    recorder = Recorder()

    _consume(name, recorder, batch_size=7)

    assert [len(e) for e in recorder.sequences()] == [7, 7, 7, 4]
    assert [s for event in recorder.sequences() for s in event] == sequences


def _records(*sizes: int) -> list[dict[str, Any]]:
    """Records whose JSON is the same length each time they are made (a fixed arrival)."""
    made = [kinesis_record(b"x" * size, sequence_number(n)) for n, size in enumerate(sizes)]
    for record in made:
        record["kinesis"]["approximateArrivalTimestamp"] = 1_800_000_000.5
    return made


@pytest.mark.parametrize(
    ("records", "limit", "fits"),
    [
        (_records(), 1_000, 0),
        (_records(10), 10, 1),  # a record alone over the limit still goes, alone
        (_records(10, 10, 10), 10**6, 3),
        (_records(10, 10, 10), len(json.dumps(kinesis_event(_records(10, 10)))), 2),
        (_records(10, 10, 10), len(json.dumps(kinesis_event(_records(10, 10)))) - 1, 1),
        (_records(10, 10, 10), len(json.dumps(kinesis_event(_records(10, 10, 10)))), 3),
    ],
    ids=["none", "one over", "all", "two exactly", "one byte short of two", "three exactly"],
)
def test_fitting_counts_the_records_one_event_of_the_limit_holds(
    records: list[dict[str, Any]], limit: int, fits: int
) -> None:
    assert fitting(records, limit) == fits
