"""Kinesis event decoding: the Lambda event's records as StreamRecords, in delivery order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from application.records import StreamRecord


class KinesisData(TypedDict):
    data: str
    sequenceNumber: str
    partitionKey: NotRequired[str]


class KinesisEventRecord(TypedDict):
    kinesis: KinesisData
    eventSourceARN: NotRequired[str]
    eventID: NotRequired[str]


class MalformedEvent(ValueError):
    """The invocation is not a Kinesis event: no record of it can be checkpointed."""


def records_from_event(event: Mapping[str, Any]) -> list[StreamRecord]:
    """Raises MalformedEvent when a record has no sequence number to checkpoint by."""
    raw = event.get("Records")
    if not isinstance(raw, list):
        raise MalformedEvent("event has no Records list")
    records = []
    for index, item in enumerate(raw):
        kinesis = item.get("kinesis") if isinstance(item, Mapping) else None
        if not isinstance(kinesis, Mapping) or not isinstance(kinesis.get("sequenceNumber"), str):
            raise MalformedEvent(f"record {index} has no kinesis.sequenceNumber")
        data = kinesis.get("data")
        records.append(
            StreamRecord(
                sequence_number=kinesis["sequenceNumber"],
                data=data if isinstance(data, str) else "",
                partition_key=str(kinesis.get("partitionKey", "")),
                source=str(item.get("eventID", "")),
            )
        )
    return records
