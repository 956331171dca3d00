"""Kinesis event decoding: the Lambda event's records as StreamRecords, in delivery order.

Records packed by the Kinesis Producer Library (its aggregation format, read by
``adapters.kpl``) are unpacked into their user records, which keep the Kinesis record's
sequence number: that is what a batch failure must name. An aggregate that cannot be read
becomes one record marked unusable (quarantined whole, as delivered); a user record that
cannot be used is marked unusable alone, and the others go on.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pybase64
from attrs import evolve

from adapters import kpl
from application.records import StreamRecord, Unusable
from domain import RejectionReason

# Only data that starts with the KPL's magic bytes can be aggregated: checking the base64
# text for them costs nothing, so plain records are never decoded twice.
_AGGREGATED_PREFIX = pybase64.b64encode(kpl.MAGIC[:3]).decode("ascii")

MAX_UNUSABLE_USER_RECORDS = 100
"""Past this many unusable user records, an aggregate is quarantined whole: a 1 MiB record
can hold hundreds of thousands of tiny broken ones, and one quarantine write each could
outlast the invocation and stall the shard on every redelivery."""


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
            stream=str(item.get("eventSourceARN", "")),
        )
        records.extend(_user_records(record))
    return records


def _user_records(record: StreamRecord) -> list[StreamRecord]:
    """The user records inside a KPL-aggregated record, or the record itself."""
    if not record.data.startswith(_AGGREGATED_PREFIX):
        return [record]
    try:
        data = pybase64.b64decode(record.data, validate=True)
    except (binascii.Error, ValueError):
        return [record]  # not base64: validation gives the reason
    if not kpl.is_aggregate(data):
        return [record]
    try:
        unpacked = kpl.unpack(data)
    except kpl.UnreadableAggregate as error:
        return [_unreadable_whole(record, str(error))]
    broken = sum(user.problem is not None for user in unpacked)
    if broken > MAX_UNUSABLE_USER_RECORDS:
        return [_unreadable_whole(record, f"{broken} of its {len(unpacked)} user records unusable")]
    return [
        StreamRecord(
            sequence_number=record.sequence_number,
            data=pybase64.b64encode(user.data).decode("ascii"),
            partition_key=user.partition_key,
            source=record.source,
            stream=record.stream,
            sub_sequence=user.sub_sequence,
            unusable=None
            if user.problem is None
            else Unusable(
                RejectionReason.KPL_USER_RECORD_UNUSABLE,
                f"KPL user record unusable: {user.problem}",
            ),
        )
        for user in unpacked
    ]


def _unreadable_whole(record: StreamRecord, why: str) -> StreamRecord:
    detail = f"KPL aggregate unreadable: {why}"
    return evolve(record, unusable=Unusable(RejectionReason.KPL_AGGREGATE_UNREADABLE, detail))
