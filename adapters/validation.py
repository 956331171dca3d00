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
    """Decodes each payload once; the validator is built once per container."""

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        schema = schema if schema is not None else load_schema()
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)

    def validate(self, data: str) -> Chunk:
        try:
            raw = pybase64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidRecord(RejectionReason.NOT_BASE64, "record data is not base64") from error
        document = _parse_json(raw)
        violation = best_match(self._validator.iter_errors(document))
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
