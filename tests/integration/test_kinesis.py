"""records_from_event on events shaped the way Lambda delivers Kinesis batches."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import deaggregate_records
from hypothesis import given
from hypothesis import strategies as st

from adapters import kpl
from adapters.kinesis import MAX_UNUSABLE_USER_RECORDS, MalformedEvent, records_from_event
from application.records import StreamRecord
from domain import RejectionReason
from entrypoints.events import encode_payload, kinesis_event, kinesis_record, sequence_number
from tests.e2e.support import SECRET


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


# KPL aggregates, written byte by byte so that every way of breaking one can be built.

VARINT, LEN, I32, START_GROUP = 0, 2, 5, 3


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes."""
    if isinstance(value, int):
        return varint(number << 3 | VARINT) + varint(value)
    return varint(number << 3 | LEN) + varint(len(value)) + value


def user(data: bytes | None, key: int | None = 0, hash_key: int | None = None) -> bytes:
    """A Record message: partition_key_index (1), explicit_hash_key_index (2), data (3)."""
    parts = [] if key is None else [field(1, key)]
    parts += [] if hash_key is None else [field(2, hash_key)]
    parts += [] if data is None else [field(3, data)]
    return b"".join(parts)


def message(
    records: list[bytes], keys: tuple[bytes, ...] = (b"pk",), hashes: tuple[bytes, ...] = ()
) -> bytes:
    """An AggregatedRecord: partition_key_table (1), explicit_hash_key_table (2), records (3)."""
    tables = [field(1, k) for k in keys] + [field(2, h) for h in hashes]
    return b"".join(tables + [field(3, r) for r in records])


def sealed(body: bytes) -> bytes:
    """The KPL's framing: the magic, the message, the message's MD5."""
    return kpl.MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def around(*bad: bytes) -> Callable[[list[bytes]], bytes]:
    """An aggregate of the good payloads with each bad Record message between two of them."""

    def build(good: list[bytes]) -> bytes:
        first, *rest = good
        return sealed(message([user(first), *bad, *(user(g) for g in rest)]))

    return build


@dataclass(frozen=True)
class Hostile:
    """A malformed aggregate built around good user payloads, and what must become of it."""

    build: Callable[[list[bytes]], bytes]
    bad: tuple[int, ...] | None
    """The sub-sequences quarantined one by one; None when the aggregate is quarantined whole."""
    detail: str


def _flipped_md5(good: list[bytes]) -> bytes:
    data = bytearray(sealed(message([user(g) for g in good])))
    data[-1] ^= 0xFF
    return bytes(data)


def _truncated(good: list[bytes]) -> bytes:
    body = message([user(g) for g in good])
    return sealed(body[: len(body) // 2])


HOSTILE: dict[str, Hostile] = {
    "bad MD5": Hostile(_flipped_md5, None, "the MD5 does not match"),
    "only the magic and a few bytes": Hostile(
        lambda good: kpl.MAGIC + b"\x1a\x02{}", None, "cannot hold the magic and the 16-byte MD5"
    ),
    "truncated message": Hostile(_truncated, None, "does not parse"),
    "protobuf garbage": Hostile(lambda good: sealed(b"\xff" * 40), None, "longer than 10 bytes"),
    "a group in the message": Hostile(
        lambda good: sealed(varint(5 << 3 | START_GROUP) + message([user(g) for g in good])),
        None,
        "groups are not supported",
    ),
    "field number 0": Hostile(
        lambda good: sealed(field(0, 1) + message([user(g) for g in good])), None, "field number 0"
    ),
    "records field a varint": Hostile(
        lambda good: sealed(message([user(g) for g in good]) + field(3, 7)),
        None,
        "field 3 is varint, not length-delimited",
    ),
    "a varint over 64 bits": Hostile(
        lambda good: sealed(message([user(g) for g in good]) + field(9, 1 << 64)),
        None,
        "exceeds 64 bits",
    ),
    "empty records list": Hostile(lambda good: sealed(message([])), None, "no user records"),
    "records field declaring a huge length": Hostile(
        lambda good: sealed(
            message([user(g) for g in good]) + varint(3 << 3 | LEN) + varint(1 << 62)
        ),
        None,
        "declares 4611686018427387904 bytes",
    ),
    "partition key declaring a huge length": Hostile(
        lambda good: sealed(
            varint(1 << 3 | LEN) + varint(1 << 40) + message([user(g) for g in good])
        ),
        None,
        "declares 1099511627776 bytes",
    ),
    "partition_key_index out of range": Hostile(
        around(user(b"{}", key=5)),
        (1,),
        "partition_key_index 5 is outside the partition key table of 1",
    ),
    "explicit_hash_key_index with no table": Hostile(
        around(user(b"{}", hash_key=0)),
        (1,),
        "explicit_hash_key_index 0 is outside the explicit hash key table of 0",
    ),
    "explicit_hash_key_index past its table": Hostile(
        lambda good: sealed(
            message(
                [user(good[0], hash_key=0), user(b"{}", hash_key=3), user(good[1], hash_key=0)],
                hashes=(b"42",),
            )
        ),
        (1,),
        "explicit_hash_key_index 3 is outside the explicit hash key table of 1",
    ),
    "a record without data": Hostile(around(user(None)), (1,), "its record has no data"),
    "a record without partition_key_index": Hostile(
        around(user(b"{}", key=None)), (1,), "its record has no partition_key_index"
    ),
    "a record whose data declares a huge length": Hostile(
        around(field(1, 0) + varint(3 << 3 | LEN) + varint(1 << 50) + b"{}"),
        (1,),
        "field 3 declares 1125899906842624 bytes where 2 are left",
    ),
    "a record of garbage": Hostile(around(b"\xff" * 12), (1,), "its record does not parse"),
    "a record whose index is bytes": Hostile(
        around(field(1, b"0") + field(3, b"{}")), (1,), "field 1 is length-delimited, not a varint"
    ),
    "several bad records, first and last": Hostile(
        lambda good: sealed(
            message([user(b"{}", key=9), *(user(g) for g in good), user(b"[]", key=9)])
        ),
        (0, 3),
        "partition_key_index 9",
    ),
    # Past the cap, quarantining one by one could outlast the invocation: whole instead.
    "more broken user records than the cap": Hostile(
        around(*[user(None)] * (MAX_UNUSABLE_USER_RECORDS + 1)), None, "user records unusable"
    ),
}


def unpacked(data: bytes, sequence: str = "4959-7") -> list[StreamRecord]:
    return records_from_event(kinesis_event([kinesis_record(data, sequence)]))


GOOD = [payload(0), payload(1)]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_aggregate_is_unusable_whole_or_in_exactly_its_bad_user_records(
    case: str, capfd: pytest.CaptureFixture[str]
) -> None:
    hostile = HOSTILE[case]
    data = hostile.build(GOOD)

    records = unpacked(data)

    assert capfd.readouterr() == ("", "")  # nothing printed, whatever the input
    assert {r.sequence_number for r in records} == {"4959-7"}
    problems = [r.unusable for r in records if r.unusable is not None]
    expected = (
        RejectionReason.KPL_AGGREGATE_UNREADABLE
        if hostile.bad is None
        else RejectionReason.KPL_USER_RECORD_UNUSABLE
    )
    assert {p.reason for p in problems} == {expected}
    assert all(hostile.detail in p.detail for p in problems)
    if hostile.bad is None:
        [record] = records
        assert record.sub_sequence is None
        assert record.data == base64.b64encode(data).decode("ascii")  # kept as delivered
        assert problems[0].detail.startswith("KPL aggregate unreadable: ")
    else:
        assert [r.sub_sequence for r in records if r.unusable] == list(hostile.bad)
        assert all(p.detail.startswith("KPL user record unusable: ") for p in problems)
        good = [base64.b64decode(r.data) for r in records if r.unusable is None]
        assert good == GOOD  # the good user records after a bad one still come through
        assert [r.sub_sequence for r in records] == list(range(len(records)))


def test_a_bad_user_record_is_kept_as_its_data_or_else_as_its_raw_record() -> None:
    without_data = user(None, key=3)
    records = unpacked(sealed(message([user(b"kept", key=7), without_data])))

    assert [base64.b64decode(r.data) for r in records] == [b"kept", without_data]
    assert [r.record_id for r in records] == ["4959-7-0", "4959-7-1"]


def test_a_detail_never_holds_the_user_records_data() -> None:
    secret = b'{"putEndpoint": "https://b/k?X-Amz-Signature=' + SECRET.encode() + b'"}'
    for data in (
        sealed(message([user(secret, key=4)])),
        _flipped_md5([secret]),
        sealed(message([user(secret)])[:-3]),
    ):
        [record] = unpacked(data)
        assert record.unusable is not None
        assert SECRET not in record.unusable.detail


def test_unknown_fields_and_tags_are_skipped_and_the_last_value_of_a_field_wins() -> None:
    tag = field(4, field(1, b"key") + field(2, b"value"))
    record = varint(9 << 3 | I32) + b"\x00" * 4 + user(b"old") + tag + field(3, b"new")
    body = (
        field(1, b"first")
        + field(1, b"second")
        + field(8, b"unknown")
        + field(3, record + field(1, 1))
    )

    [decoded] = unpacked(sealed(body))

    assert decoded.unusable is None
    assert (base64.b64decode(decoded.data), decoded.partition_key) == (b"new", "second")


def test_a_partition_key_that_is_not_utf8_does_not_cost_the_record() -> None:
    [decoded] = unpacked(sealed(message([user(b"data")], keys=(b"\xff\xfe",))))

    assert decoded.unusable is None
    assert decoded.partition_key == "\ufffd\ufffd"


def test_data_that_does_not_start_with_the_magic_or_is_not_base64_is_a_plain_record() -> None:
    almost = kinesis_record(b"\xf3\x89\x9a\xc3" + b"x" * 40, "4959-1")
    not_base64 = kinesis_record(b"", "4959-2")
    not_base64["kinesis"]["data"] = base64.b64encode(kpl.MAGIC).decode("ascii")[:4] + "*"

    records = records_from_event(kinesis_event([almost, not_base64]))

    assert [(r.sub_sequence, r.unusable) for r in records] == [(None, None), (None, None)]


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.none() | st.integers(0, 2**128 - 1).map(str),
            st.binary(max_size=64),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_what_the_kpl_packs_comes_out_as_aws_kinesis_agg_unpacks_it(
    users: list[tuple[str, str | None, bytes]],
) -> None:
    packer = RecordAggregator()
    for key, hash_key, data in users:
        assert packer.add_user_record(key, data, hash_key) is None
    key, _, data = packer.clear_and_get().get_contents()
    record = kinesis_record(data, "4959-3", partition_key=key)
    expected = [
        (
            base64.b64decode(u["kinesis"]["data"]),
            u["kinesis"]["partitionKey"],
            u["kinesis"]["subSequenceNumber"],
        )
        for u in deaggregate_records([record])
    ]

    records = records_from_event(kinesis_event([record]))

    assert [
        (base64.b64decode(r.data), r.partition_key, r.sub_sequence) for r in records
    ] == expected
    assert all(r.unusable is None and r.sequence_number == "4959-3" for r in records)
