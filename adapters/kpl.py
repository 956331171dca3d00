"""Records aggregated by the Kinesis Producer Library, unpacked by our own reader.

The KPL's aggregation format: the magic bytes ``F3 89 9A C2``, an ``AggregatedRecord``
protobuf message, then the MD5 (16 bytes) of that message. The message holds a table of
partition keys, a table of explicit hash keys and the user records; each user record names
its keys by index into those tables and carries its data.

Why not aws_kinesis_agg's deaggregator: on a broken aggregate it prints every user record's
base64 to stderr (presigned signatures included, out of reach of our log scrubber), swallows
the error and stops, so the user records after a bad one vanish while the Kinesis record is
acknowledged; a bad explicit hash key index makes its error printer raise. Why not the
protobuf runtime either: it ships no types, aws_kinesis_agg's generated classes import only
after that package edits ``sys.path``, and a parser of one message per user record could
not tell a broken user record from a broken aggregate. The wire format of three messages is
small; this reader never prints, and raises only ``UnreadableAggregate``.

**Unreadable whole** (the Kinesis record is quarantined as delivered, under its sequence
number): data that starts with the magic but is too short to hold the MD5; an MD5 that does
not match the message (nothing in a message that fails its own checksum can be trusted); a
message that is not an ``AggregatedRecord`` on the wire (truncated, a length past its end,
a varint over 64 bits, field number 0, a group, a table or record field that is not
length-delimited); and an aggregate with no user records, which would otherwise vanish.

**One bad user record** (quarantined as ``<sequenceNumber>-<subSequence>``; the user
records around it go on): its ``Record`` message does not parse (same rules as above), lacks
``partition_key_index`` or ``data``, or names a partition key or explicit hash key outside
its table. Its quarantined data is its ``data`` field, or the raw ``Record`` message when it
has none.

As in protobuf, unknown fields are skipped and a repeated singular field keeps its last
value; a known field of the wrong wire type is an error here (protobuf would skip it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from attrs import frozen

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE_NAMES = {_VARINT: "varint", _I64: "64-bit", _LEN: "length-delimited", _I32: "32-bit"}
_MAX_FIELD_NUMBER = (1 << 29) - 1

# AggregatedRecord's fields, then Record's (amazon-kinesis-producer's messages.proto).
_PARTITION_KEY_TABLE, _EXPLICIT_HASH_KEY_TABLE, _RECORDS = 1, 2, 3
_PARTITION_KEY_INDEX, _EXPLICIT_HASH_KEY_INDEX, _DATA = 1, 2, 3


class UnreadableAggregate(ValueError):
    """The aggregate as a whole cannot be trusted; its message says why (never its data)."""


class _Malformed(ValueError):
    """One protobuf message is not valid on the wire."""


@frozen
class UserRecord:
    """One user record of an aggregate: its data, or why it cannot be used."""

    sub_sequence: int
    data: bytes
    partition_key: str = ""
    problem: str | None = None
    """None for a usable record; otherwise why not, never quoting its data or keys."""


def is_aggregate(data: bytes) -> bool:
    """The magic is not valid UTF-8, so no JSON payload (a plain record) can start with it."""
    return data.startswith(MAGIC)


def unpack(data: bytes) -> list[UserRecord]:
    """Every user record of an aggregate, in order; raises UnreadableAggregate."""
    if not is_aggregate(data):
        raise UnreadableAggregate("the data does not start with the KPL magic")
    if len(data) < len(MAGIC) + DIGEST_SIZE:
        raise UnreadableAggregate(
            f"{len(data)} bytes cannot hold the magic and the {DIGEST_SIZE}-byte MD5"
        )
    body = memoryview(data)[len(MAGIC) : len(data) - DIGEST_SIZE]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-DIGEST_SIZE:]:
        raise UnreadableAggregate("the MD5 does not match the aggregated message")
    partition_keys: list[memoryview] = []
    hash_keys: list[memoryview] = []
    records: list[memoryview] = []
    tables = {
        _PARTITION_KEY_TABLE: partition_keys,
        _EXPLICIT_HASH_KEY_TABLE: hash_keys,
        _RECORDS: records,
    }
    try:
        for number, wire, value in _fields(body):
            table = tables.get(number)
            if table is not None:
                table.append(_expect_bytes(number, wire, value))
    except _Malformed as error:
        raise UnreadableAggregate(f"the aggregated message does not parse: {error}") from None
    if not records:
        raise UnreadableAggregate("the aggregated message holds no user records")
    return [
        _user_record(index, raw, partition_keys, len(hash_keys))
        for index, raw in enumerate(records)
    ]


def _user_record(
    index: int, raw: memoryview, partition_keys: list[memoryview], hash_key_count: int
) -> UserRecord:
    key_index: int | None = None
    hash_key_index: int | None = None
    data: memoryview | None = None
    try:
        for number, wire, value in _fields(raw):
            if number == _PARTITION_KEY_INDEX:
                key_index = _expect_int(number, wire, value)
            elif number == _EXPLICIT_HASH_KEY_INDEX:
                hash_key_index = _expect_int(number, wire, value)
            elif number == _DATA:
                data = _expect_bytes(number, wire, value)
    except _Malformed as error:
        return UserRecord(index, bytes(raw), problem=f"its record does not parse: {error}")
    if data is None:
        return UserRecord(index, bytes(raw), problem="its record has no data")
    if key_index is None:
        return UserRecord(index, bytes(data), problem="its record has no partition_key_index")
    if key_index >= len(partition_keys):
        problem = (
            f"partition_key_index {key_index} is outside the partition key table"
            f" of {len(partition_keys)}"
        )
        return UserRecord(index, bytes(data), problem=problem)
    if hash_key_index is not None and hash_key_index >= hash_key_count:
        problem = (
            f"explicit_hash_key_index {hash_key_index} is outside the explicit hash key table"
            f" of {hash_key_count}"
        )
        return UserRecord(index, bytes(data), problem=problem)
    # The key only labels the record: a producer's stray byte in it is no reason to drop data.
    key = bytes(partition_keys[key_index]).decode("utf-8", errors="replace")
    return UserRecord(index, bytes(data), key)


def _fields(message: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message, in wire order."""
    end = len(message)
    position = 0
    while position < end:
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        if not 0 < number <= _MAX_FIELD_NUMBER:
            raise _Malformed(f"field number {number} at byte {position}")
        value: int | memoryview
        if wire == _VARINT:
            value, position = _varint(message, position)
        elif wire in (_I64, _I32, _LEN):
            if wire == _LEN:
                size, position = _varint(message, position)
            else:
                size = 8 if wire == _I64 else 4
            if size > end - position:
                raise _Malformed(
                    f"field {number} declares {size} bytes where {end - position} are left"
                )
            value = message[position : position + size]
            position += size
        else:
            raise _Malformed(f"field {number} has wire type {wire} (groups are not supported)")
        yield number, wire, value


def _varint(message: memoryview, position: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if position >= len(message):
            raise _Malformed("a varint runs past the end")
        byte = message[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >= 1 << 64:
                raise _Malformed("a varint exceeds 64 bits")
            return value, position
    raise _Malformed("a varint is longer than 10 bytes")


def _expect_int(number: int, wire: int, value: int | memoryview) -> int:
    if wire != _VARINT or not isinstance(value, int):
        raise _Malformed(f"field {number} is {_WIRE_NAMES[wire]}, not a varint")
    return value


def _expect_bytes(number: int, wire: int, value: int | memoryview) -> memoryview:
    if wire != _LEN or not isinstance(value, memoryview):
        raise _Malformed(f"field {number} is {_WIRE_NAMES[wire]}, not length-delimited")
    return value
