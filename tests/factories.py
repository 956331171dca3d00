"""Records and payloads for tests, built the way producers and Lambda build them."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from application.records import StreamRecord
from entrypoints.events import sequence_number

_sequence = itertools.count(1)


def payload(endpoint: str, partition: int, count: int, content: bytes) -> dict[str, Any]:
    return {
        "putEndpoint": endpoint,
        "partition": partition,
        "partitionCount": count,
        "content": base64.b64encode(content).decode("ascii"),
    }


def record(document: Any) -> StreamRecord:
    """A stream record whose data is the base64 of ``document`` as JSON (or of raw bytes)."""
    raw = document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")
    return StreamRecord(sequence_number(next(_sequence)), base64.b64encode(raw).decode("ascii"))


def raw_record(data: str) -> StreamRecord:
    return StreamRecord(sequence_number(next(_sequence)), data)


def file_records(endpoint: str, content: bytes, chunk_size: int) -> list[StreamRecord]:
    count = max(1, -(-len(content) // chunk_size))
    return [
        record(payload(endpoint, p, count, content[p * chunk_size : (p + 1) * chunk_size]))
        for p in range(count)
    ]
