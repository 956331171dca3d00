"""records_from_event on events shaped the way Lambda delivers Kinesis batches."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from adapters.kinesis import MalformedEvent, records_from_event
from entrypoints.events import encode_payload, kinesis_event, kinesis_record, sequence_number


def payload(partition: int) -> bytes:
    return encode_payload(
        {
            "putEndpoint": "https://uploads.example.com/a?sig=s",
            "partition": partition,
            "partitionCount": 3,
            "content": "YQ==",
        }
    )


def test_records_keep_their_delivery_order_and_sequence_numbers() -> None:
    numbers = [sequence_number(n) for n in (30, 4, 17)]
    event = kinesis_event(
        [kinesis_record(payload(p), seq, partition_key=f"pk-{p}") for p, seq in enumerate(numbers)]
    )

    records = records_from_event(event)

    assert [record.sequence_number for record in records] == numbers
    assert [base64.b64decode(record.data) for record in records] == [payload(p) for p in range(3)]
    assert [record.partition_key for record in records] == ["pk-0", "pk-1", "pk-2"]
    assert records[0].source == f"shardId-000000000000:{numbers[0]}"


def test_a_record_keeps_its_data_still_encoded() -> None:
    event = kinesis_event([kinesis_record(b"raw producer bytes", sequence_number(1))])

    (record,) = records_from_event(event)

    assert record.data == base64.b64encode(b"raw producer bytes").decode("ascii")


@pytest.mark.parametrize("data", [None, 42, ["x"]])
def test_missing_or_non_text_data_becomes_empty(data: object) -> None:
    item = kinesis_record(b"x", sequence_number(1))
    if data is None:
        del item["kinesis"]["data"]
    else:
        item["kinesis"]["data"] = data

    (record,) = records_from_event(kinesis_event([item]))

    assert record.data == ""
    assert record.sequence_number == sequence_number(1)


def test_a_record_without_partition_key_or_event_id_is_still_read() -> None:
    event: dict[str, Any] = {
        "Records": [{"kinesis": {"data": "eA==", "sequenceNumber": sequence_number(9)}}]
    }

    (record,) = records_from_event(event)

    assert (record.partition_key, record.source) == ("", "")


def test_an_empty_batch_has_no_records() -> None:
    assert records_from_event(kinesis_event([])) == []


@pytest.mark.parametrize("sequence", [None, 4959, ["4959"]])
def test_a_record_without_a_text_sequence_number_makes_the_event_malformed(
    sequence: object,
) -> None:
    good = kinesis_record(b"x", sequence_number(1))
    bad = kinesis_record(b"y", sequence_number(2))
    if sequence is None:
        del bad["kinesis"]["sequenceNumber"]
    else:
        bad["kinesis"]["sequenceNumber"] = sequence

    with pytest.raises(MalformedEvent, match="record 1"):
        records_from_event(kinesis_event([good, bad]))


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": None},
        {"Records": {"kinesis": {}}},
        {"Records": ["not a record"]},
        {"Records": [{"dynamodb": {"SequenceNumber": "1"}}]},
        {"Records": [{"kinesis": "not a mapping"}]},
    ],
)
def test_an_event_that_is_not_a_kinesis_batch_is_malformed(event: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        records_from_event(event)
