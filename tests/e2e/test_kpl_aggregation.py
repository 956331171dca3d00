"""Records packed by the Kinesis Producer Library are unpacked before validation; a batch
failure still names the Kinesis record's own sequence number."""

from __future__ import annotations

from typing import Any

from aws_kinesis_agg.aggregator import RecordAggregator

from adapters.kinesis import records_from_event
from entrypoints.events import encode_payload, kinesis_event, kinesis_record
from tests.assertions import assert_uploaded_once
from tests.e2e.support import Record, Stack, failures


def aggregated(sequence: str, payloads: list[bytes]) -> Record:
    """One Kinesis record carrying ``payloads`` as user records, as the KPL packs them."""
    packer = RecordAggregator()
    for payload in payloads:
        assert packer.add_user_record("file", payload) is None
    _, _, data = packer.clear_and_get().get_contents()
    return kinesis_record(data, sequence)


def payload_bytes(payloads: tuple[dict[str, Any], ...]) -> list[bytes]:
    return [encode_payload(p) for p in payloads]


def test_user_records_come_out_in_order_under_their_kinesis_sequence_number() -> None:
    plain = kinesis_record(b'{"plain": true}', "4959-1")
    packed = aggregated("4959-2", [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}'])

    records = records_from_event(kinesis_event([plain, packed]))

    assert [(r.sequence_number, r.sub_sequence) for r in records] == [
        ("4959-1", None),
        ("4959-2", 0),
        ("4959-2", 1),
        ("4959-2", 2),
    ]
    assert [r.record_id for r in records[1:]] == ["4959-2-0", "4959-2-1", "4959-2-2"]


def test_data_that_starts_with_the_magic_but_is_no_aggregate_is_unusable_whole() -> None:
    looks_packed = kinesis_record(b"\xf3\x89\x9a\xc2 not a real aggregate", "4959-9")

    [record] = records_from_event(kinesis_event([looks_packed]))

    assert record.sub_sequence is None
    assert record.data == looks_packed["kinesis"]["data"]
    assert record.unusable is not None
    assert (
        record.unusable.detail
        == "KPL aggregate unreadable: the MD5 does not match the aggregated message"
    )


def test_a_file_sent_in_aggregated_records_is_uploaded_whole(stack: Stack) -> None:
    source = stack.file("kpl.bin", size=50_000, chunk_size=10_000)
    chunks = payload_bytes(source.payloads)
    records = [
        aggregated(stack.seq(), chunks[:2]),
        stack.seq.record(source.payload(2)),
        aggregated(stack.seq(), [*chunks[3:], chunks[0]]),  # with a duplicate inside
    ]

    response = stack.invoke(stack.container("a"), records)

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_a_poison_user_record_is_quarantined_under_its_sub_sequence(stack: Stack) -> None:
    source = stack.file("kpl-poison.bin", size=20_000, chunk_size=10_000)
    chunks = payload_bytes(source.payloads)
    sequence = stack.seq()
    record = aggregated(sequence, [chunks[0], b"{not json", chunks[1]])

    response = stack.invoke(stack.container("a"), [record])

    assert failures(response) == []
    [key] = stack.keys("quarantine/")
    assert key.endswith(f"/{sequence}-1")
    assert stack.metadata(key)["reason"] == "data-not-json"
    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_a_batch_failure_names_the_aggregated_record_once(stack: Stack) -> None:
    source = stack.file("kpl-failure.bin", size=40_000, chunk_size=10_000)
    chunks = payload_bytes(source.payloads)
    container = stack.container("a", UPLOAD_MAX_ATTEMPTS="1")
    stack.receiver.fail_next(503)
    sequence = stack.seq()

    response = stack.invoke(container, [aggregated(sequence, chunks)])

    assert failures(response) == [sequence]
