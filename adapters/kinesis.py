"""Kinesis event decoding: the Lambda event's records as StreamRecords, in delivery order.

Records packed by the Kinesis Producer Library (its aggregation format) are unpacked into
their user records, which keep the Kinesis record's sequence number: that is what a batch
failure must name.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from aws_kinesis_agg import MAGIC
from aws_kinesis_agg.deaggregator import deaggregate_records

from application.records import StreamRecord

# Only data that starts with the KPL's magic bytes can be aggregated: checking the base64
# text for them costs nothing, so plain records are never decoded twice.
_AGGREGATED_PREFIX = base64.b64encode(MAGIC[:3]).decode("ascii")


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
        record = StreamRecord(
            sequence_number=kinesis["sequenceNumber"],
            data=data if isinstance(data, str) else "",
            partition_key=str(kinesis.get("partitionKey", "")),
            source=str(item.get("eventID", "")),
        )
        records.extend(_user_records(item, record))
    return records


def _text(data: object) -> str:
    """The library hands user records' base64 back as bytes; Lambda's records carry text."""
    return data.decode("ascii") if isinstance(data, bytes) else str(data)


def _user_records(item: Mapping[str, Any], record: StreamRecord) -> list[StreamRecord]:
    """The user records inside a KPL-aggregated record, or the record itself."""
    if not record.data.startswith(_AGGREGATED_PREFIX):
        return [record]
    try:
        unpacked = deaggregate_records([dict(item)])
    except (binascii.Error, ValueError, KeyError):
        return [record]  # not an aggregate after all: validation gives the reason
    if len(unpacked) == 1 and "subSequenceNumber" not in unpacked[0]["kinesis"]:
        return [record]
    return [
        StreamRecord(
            sequence_number=record.sequence_number,
            data=_text(user["kinesis"]["data"]),
            partition_key=str(user["kinesis"].get("partitionKey", "")),
            source=record.source,
            sub_sequence=int(user["kinesis"]["subSequenceNumber"]),
        )
        for user in unpacked
    ]
