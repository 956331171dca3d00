"""Drives a handler over one shard's records the way Lambda's event source mapping does.

Batches go in order; after a response with batchItemFailures the next batch starts again at
the lowest reported sequence number. Used by the schedule and end-to-end tests (the demo
feeds its handler through entrypoints.streams instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from attrs import define

Invoke = Callable[[int, Mapping[str, Any]], Mapping[str, Any]]
"""(invocation number, event) -> the handler's response."""


@define
class DriveReport:
    invocations: int = 0
    records_sent: int = 0
    redelivered: int = 0


def drive_shard(
    records: Sequence[dict[str, Any]],
    invoke: Invoke,
    batch_size: int,
    max_invocations: int = 1000,
) -> DriveReport:
    """Raise RuntimeError if the shard makes no progress within ``max_invocations``."""
    report = DriveReport()
    position = 0
    while position < len(records):
        if report.invocations >= max_invocations:
            raise RuntimeError(f"shard stuck at record {position} after {max_invocations} batches")
        batch = list(records[position : position + batch_size])
        response = invoke(report.invocations, {"Records": batch})
        report.invocations += 1
        report.records_sent += len(batch)
        failures = [f["itemIdentifier"] for f in response.get("batchItemFailures", [])]
        if not failures:
            position += len(batch)
            continue
        sequence = [r["kinesis"]["sequenceNumber"] for r in batch]
        lowest = min(sequence.index(s) for s in failures)
        report.redelivered += len(batch) - lowest
        position += lowest
    return report
