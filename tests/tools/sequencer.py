"""Kinesis records with sequence numbers that grow along the shard: the end-to-end tests and
the benchmark number their records with the same ``Sequencer``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from entrypoints.events import encode_payload, kinesis_record, sequence_number

Record = dict[str, Any]
"""One element of a Kinesis event's Records, as Lambda delivers it."""


class Sequencer:
    """Hands out sequence numbers that grow along the shard, as Kinesis does."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return sequence_number(self._next)

    def record(self, payload: dict[str, Any]) -> Record:
        return kinesis_record(encode_payload(payload), self())

    def raw(self, data: bytes) -> Record:
        """A record whose data is whatever bytes a producer put, not a payload."""
        return kinesis_record(data, self())

    def not_base64(self, data: str) -> Record:
        record = kinesis_record(b"", self())
        record["kinesis"]["data"] = data
        return record

    def records(self, payloads: Iterable[dict[str, Any]]) -> list[Record]:
        return [self.record(p) for p in payloads]
