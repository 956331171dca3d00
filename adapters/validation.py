"""The request validator: record data to a Chunk, checked against the JSON schema once compiled."""

from __future__ import annotations

import binascii
import json
from importlib import resources
from typing import Any

import orjson
import pybase64
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from domain import Chunk, Endpoint, InvalidRecord, RejectionReason


def load_schema() -> dict[str, Any]:
    text = resources.files("adapters").joinpath("schemas/chunk.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class JsonSchemaRequestValidator:
    """Decodes each payload once; the validator is built once per container.

    With the packaged schema, a document of exactly the expected types is taken without
    jsonschema (``plainly_valid``): walking the schema was about a third of a record's
    validation CPU, and a stream of small files is CPU-bound. Everything else, and every
    document under another schema, is judged by jsonschema, which also names the reason.
    """

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        packaged = load_schema()
        schema = schema if schema is not None else packaged
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)
        self._plain_check = schema == packaged

    def validate(self, data: str) -> Chunk:
        try:
            raw = pybase64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRecord(RejectionReason.NOT_BASE64, "record data is not base64") from error
        document = _parse_json(raw)
        plain = self._plain_check and plainly_valid(document)
        violation = None if plain else best_match(self._validator.iter_errors(document))
        if violation is not None:
            # The instance itself is never quoted: it may hold the presigned endpoint.
            raise InvalidRecord(
                RejectionReason.SCHEMA,
                f"{violation.json_path} fails the schema's '{violation.validator}' rule",
            )
        # Every later step (file id, logs, metadata, URL parsing, IDNA, connecting) reads the
        # endpoint: one that any of them could not read is rejected here, with its reason.
        endpoint = Endpoint.parse(document["putEndpoint"])
        try:
            content = pybase64.b64decode(document["content"], validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRecord(
                RejectionReason.CONTENT_NOT_BASE64, "content is not base64"
            ) from error
        return Chunk(
            put_endpoint=endpoint.text,
            partition=int(document["partition"]),
            partition_count=int(document["partitionCount"]),
            content=content,
        )


def plainly_valid(document: Any) -> bool:
    """True only for a document the packaged schema accepts: an object whose four fields have
    exactly the JSON types it names, within its bounds (other fields are allowed). False
    says nothing: the schema judges (a bool is not an integer; 1.0 is, to JSON Schema)."""
    if type(document) is not dict:
        return False
    endpoint = document.get("putEndpoint")
    partition = document.get("partition")
    count = document.get("partitionCount")
    return (
        type(endpoint) is str
        and endpoint != ""
        and type(partition) is int
        and partition >= 0
        and type(count) is int
        and count >= 1
        and type(document.get("content")) is str
    )


def _parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses integers past 64 bits; the standard parser reads them so that the
    # schema and the limits, not the parser, give the reason.
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise InvalidRecord(RejectionReason.NOT_JSON, "record data is not JSON") from error
