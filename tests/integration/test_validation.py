"""JsonSchemaRequestValidator with the packaged schema: record data in, Chunk or reason out."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from adapters.validation import JsonSchemaRequestValidator, load_schema, plainly_valid
from domain import Chunk, ChunkRejected, Limits, PartitionCountTooLarge, RejectionReason
from entrypoints.events import encode_payload
from tests.integration.builders import SECRET, SIGNED_QUERY, signed

ENDPOINT = signed("https://uploads.example.com/files/report.csv")


@pytest.fixture
def validator() -> JsonSchemaRequestValidator:
    return JsonSchemaRequestValidator()


def valid_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "putEndpoint": ENDPOINT,
        "partition": 1,
        "partitionCount": 3,
        "content": base64.b64encode(b"chunk bytes \x00\xff").decode("ascii"),
    }
    payload.update(changes)
    return payload


def data_of(document: object) -> str:
    """Record data as Kinesis hands it to Lambda: base64 of the producer's JSON bytes."""
    return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")


def raw_data(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def rejection(validator: JsonSchemaRequestValidator, data: str) -> ChunkRejected:
    with pytest.raises(ChunkRejected) as rejected:
        validator.validate(data)
    return rejected.value


def test_a_valid_record_decodes_to_its_chunk(validator: JsonSchemaRequestValidator) -> None:
    data = base64.b64encode(encode_payload(valid_payload())).decode("ascii")

    assert validator.validate(data) == Chunk(ENDPOINT, 1, 3, b"chunk bytes \x00\xff")


def test_a_record_with_empty_content_decodes_to_an_empty_chunk(
    validator: JsonSchemaRequestValidator,
) -> None:
    chunk = validator.validate(data_of(valid_payload(content="", partition=0, partitionCount=1)))

    assert chunk.content == b""
    assert chunk.partition_count == 1


def test_unknown_extra_fields_do_not_reject_a_record(validator: JsonSchemaRequestValidator) -> None:
    chunk = validator.validate(data_of(valid_payload(producer="batch-42")))

    assert chunk.partition == 1


INVALID: list[tuple[str, str, RejectionReason]] = [
    ("data not base64", "not base64 at all!", RejectionReason.NOT_BASE64),
    ("data with a stray character", data_of(valid_payload()) + "*", RejectionReason.NOT_BASE64),
    ("data not ascii", "é" + data_of(valid_payload()), RejectionReason.NOT_BASE64),
    ("not JSON", raw_data(b"putEndpoint=" + ENDPOINT.encode()), RejectionReason.NOT_JSON),
    ("truncated JSON", raw_data(encode_payload(valid_payload())[:-1]), RejectionReason.NOT_JSON),
    ("not UTF-8", raw_data(b'{"putEndpoint": "\xff\xfe"}'), RejectionReason.NOT_JSON),
    ("deeply nested JSON", raw_data(b"[" * 100_000 + b"]" * 100_000), RejectionReason.NOT_JSON),
    ("empty data", "", RejectionReason.NOT_JSON),
    ("JSON array", data_of([valid_payload()]), RejectionReason.SCHEMA),
    ("JSON string", data_of(ENDPOINT), RejectionReason.SCHEMA),
    ("JSON null", data_of(None), RejectionReason.SCHEMA),
    (
        "missing putEndpoint",
        data_of({k: v for k, v in valid_payload().items() if k != "putEndpoint"}),
        RejectionReason.SCHEMA,
    ),
    (
        "missing partition",
        data_of({k: v for k, v in valid_payload().items() if k != "partition"}),
        RejectionReason.SCHEMA,
    ),
    (
        "missing partitionCount",
        data_of({k: v for k, v in valid_payload().items() if k != "partitionCount"}),
        RejectionReason.SCHEMA,
    ),
    (
        "missing content",
        data_of({k: v for k, v in valid_payload().items() if k != "content"}),
        RejectionReason.SCHEMA,
    ),
    ("string partition", data_of(valid_payload(partition="1")), RejectionReason.SCHEMA),
    ("float partition", data_of(valid_payload(partition=1.5)), RejectionReason.SCHEMA),
    ("bool partition", data_of(valid_payload(partition=True)), RejectionReason.SCHEMA),
    ("null partition", data_of(valid_payload(partition=None)), RejectionReason.SCHEMA),
    ("string partitionCount", data_of(valid_payload(partitionCount="3")), RejectionReason.SCHEMA),
    ("float partitionCount", data_of(valid_payload(partitionCount=2.5)), RejectionReason.SCHEMA),
    ("bool partitionCount", data_of(valid_payload(partitionCount=True)), RejectionReason.SCHEMA),
    ("numeric putEndpoint", data_of(valid_payload(putEndpoint=7)), RejectionReason.SCHEMA),
    ("numeric content", data_of(valid_payload(content=7)), RejectionReason.SCHEMA),
    ("negative partition", data_of(valid_payload(partition=-1)), RejectionReason.SCHEMA),
    ("partitionCount 0", data_of(valid_payload(partitionCount=0)), RejectionReason.SCHEMA),
    (
        "negative partitionCount",
        data_of(valid_payload(partitionCount=-3)),
        RejectionReason.SCHEMA,
    ),
    ("empty putEndpoint", data_of(valid_payload(putEndpoint="")), RejectionReason.SCHEMA),
    (
        "overlong putEndpoint",
        data_of(valid_payload(putEndpoint=ENDPOINT + "x" * 9000)),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "putEndpoint with a lone surrogate, which only the fallback JSON parser reads",
        data_of(valid_payload(putEndpoint=ENDPOINT + "\ud800")),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "putEndpoint host label over 63 characters",
        data_of(valid_payload(putEndpoint=f"https://{'u' * 64}.example.com/{SIGNED_QUERY}")),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "putEndpoint port out of range",
        data_of(valid_payload(putEndpoint=signed("https://uploads.example.com:99999/a"))),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "putEndpoint with credentials",
        data_of(valid_payload(putEndpoint=signed("https://u:pw@uploads.example.com/a"))),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "putEndpoint not http",
        data_of(valid_payload(putEndpoint=signed("ftp://uploads.example.com/a"))),
        RejectionReason.ENDPOINT_INVALID,
    ),
    (
        "partition equal to partitionCount",
        data_of(valid_payload(partition=3, partitionCount=3)),
        RejectionReason.PARTITION_OUT_OF_RANGE,
    ),
    (
        "partition beyond partitionCount",
        data_of(valid_payload(partition=9, partitionCount=3)),
        RejectionReason.PARTITION_OUT_OF_RANGE,
    ),
    (
        "partition beyond 64 bits",
        data_of(valid_payload(partition=2**70, partitionCount=3)),
        RejectionReason.PARTITION_OUT_OF_RANGE,
    ),
    (
        "negative partition beyond 64 bits",
        data_of(valid_payload(partition=-(2**70))),
        RejectionReason.SCHEMA,
    ),
    (
        "content not base64",
        data_of(valid_payload(content="%%%%")),
        RejectionReason.CONTENT_NOT_BASE64,
    ),
    (
        "content with bad padding",
        data_of(valid_payload(content="YWJj=")),
        RejectionReason.CONTENT_NOT_BASE64,
    ),
    (
        "content not ascii",
        data_of(valid_payload(content="YWJ€")),
        RejectionReason.CONTENT_NOT_BASE64,
    ),
]


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in INVALID], ids=[name for name, _, _ in INVALID]
)
def test_an_invalid_record_is_rejected_with_its_reason(
    validator: JsonSchemaRequestValidator, data: str, reason: RejectionReason
) -> None:
    assert rejection(validator, data).reason is reason


@pytest.mark.parametrize("data", [d for _, d, _ in INVALID], ids=[name for name, _, _ in INVALID])
def test_a_rejection_never_quotes_the_endpoint_or_its_query(
    validator: JsonSchemaRequestValidator, data: str
) -> None:
    error = rejection(validator, data)

    for text in (error.detail, str(error), repr(error)):
        assert SECRET not in text
        assert SIGNED_QUERY not in text
        assert "uploads.example.com" not in text


def decoded_or_rejected(validator: JsonSchemaRequestValidator, data: str) -> Chunk | ChunkRejected:
    try:
        return validator.validate(data)
    except ChunkRejected as error:
        return error


def test_a_partition_count_beyond_64_bits_is_refused_by_schema_or_limits_never_as_not_json(
    validator: JsonSchemaRequestValidator,
) -> None:
    outcome = decoded_or_rejected(
        validator, data_of(valid_payload(partition=0, partitionCount=2**70))
    )

    if isinstance(outcome, ChunkRejected):
        assert outcome.reason in (RejectionReason.SCHEMA, RejectionReason.PARTITION_COUNT_TOO_LARGE)
    else:
        assert outcome.partition_count == 2**70
        with pytest.raises(PartitionCountTooLarge):
            Limits().check_partition_count(outcome.partition_count)


def test_a_decoder_built_once_decodes_many_records(validator: JsonSchemaRequestValidator) -> None:
    chunks = [
        validator.validate(data_of(valid_payload(partition=p, partitionCount=50)))
        for p in range(50)
    ]

    assert [chunk.partition for chunk in chunks] == list(range(50))


def test_an_idn_endpoint_is_kept_as_the_producer_wrote_it(
    validator: JsonSchemaRequestValidator,
) -> None:
    endpoint = signed("https://Bücher.example/files/ä.csv")

    chunk = validator.validate(data_of(valid_payload(putEndpoint=endpoint)))

    assert chunk.put_endpoint == endpoint  # the file id hashes the producer's own text


def test_an_invalid_endpoint_shows_only_its_redacted_form(
    validator: JsonSchemaRequestValidator,
) -> None:
    endpoint = signed("https://user:hunter2@uploads.example.com/files/report.csv")

    error = rejection(validator, data_of(valid_payload(putEndpoint=endpoint)))

    assert error.shown_endpoint == "https://uploads.example.com/files/report.csv"


def schema_only() -> JsonSchemaRequestValidator:
    """The packaged rules under another schema document: every record goes through jsonschema."""
    return JsonSchemaRequestValidator({**load_schema(), "description": "the same rules"})


EDGES: list[tuple[str, object]] = [
    ("valid", valid_payload()),
    ("partition 0 of 1", valid_payload(partition=0, partitionCount=1)),
    ("extra fields", valid_payload(producer="batch-42", nested={"a": [1]})),
    ("bool partition", valid_payload(partition=True)),
    ("bool partition count", valid_payload(partitionCount=True)),
    ("float partition with no fraction", valid_payload(partition=1.0)),
    ("float partition count with no fraction", valid_payload(partitionCount=3.0)),
    ("float partition", valid_payload(partition=1.5)),
    ("negative partition", valid_payload(partition=-1)),
    ("zero partition count", valid_payload(partitionCount=0)),
    ("partition count past 64 bits", valid_payload(partition=0, partitionCount=2**70)),
    ("empty endpoint", valid_payload(putEndpoint="")),
    ("endpoint a number", valid_payload(putEndpoint=7)),
    ("endpoint null", valid_payload(putEndpoint=None)),
    ("content null", valid_payload(content=None)),
    ("content a list", valid_payload(content=["YQ=="])),
    ("partition a string", valid_payload(partition="1")),
    ("no content", {k: v for k, v in valid_payload().items() if k != "content"}),
    ("no partition", {k: v for k, v in valid_payload().items() if k != "partition"}),
    ("an array", [valid_payload()]),
    ("a string", "putEndpoint"),
    ("null", None),
]


@pytest.mark.parametrize("document", [d for _, d in EDGES], ids=[name for name, _ in EDGES])
def test_the_fast_path_decides_as_the_schema_does(document: object) -> None:
    """A document taken without jsonschema is one the schema accepts, and the validator
    answers every document as jsonschema alone would (same chunk, or same reason)."""
    if plainly_valid(document):
        assert Draft202012Validator(load_schema()).is_valid(document)
    data = data_of(document)

    assert outcome(JsonSchemaRequestValidator(), data) == outcome(schema_only(), data)


def outcome(validator: JsonSchemaRequestValidator, data: str) -> object:
    found = decoded_or_rejected(validator, data)
    return (found.reason, found.detail) if isinstance(found, ChunkRejected) else found


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "YWJj", "not base64!", ENDPOINT, "http://[::1]:8080/x"]),
    st.lists(st.integers(), max_size=2),
)
_FIELDS = st.sampled_from(["putEndpoint", "partition", "partitionCount", "content", "other"])


@given(
    st.dictionaries(_FIELDS, _VALUES, max_size=5),
    st.booleans(),
)
def test_any_document_is_decided_by_the_fast_path_as_by_the_schema(
    fields: dict[str, object], start_valid: bool
) -> None:
    document = {**valid_payload(), **fields} if start_valid else fields
    if plainly_valid(document):
        assert Draft202012Validator(load_schema()).is_valid(document)
    data = data_of(document)

    assert outcome(JsonSchemaRequestValidator(), data) == outcome(schema_only(), data)
