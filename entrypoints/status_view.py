"""What ``sfb status`` shows: each unfinished file, how far it got, how long it has left
before expiry gives it up, and what the operator should do next.

Pure: the rows are computed from the file report, the time and the incomplete-file TTL, and
rendered as plain ASCII text (no terminal needed) or as JSON-able data. No I/O here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from attrs import frozen

from application.views import FileSummary
from domain import redact

COLLECTING = "collecting"
COMPLETE = "complete"
ASSEMBLING = "assembling"
FAILED = "failed"
EXPIRED = "expired"
KNOWN_STATES = (COLLECTING, COMPLETE, ASSEMBLING, FAILED, EXPIRED)
"""The states ``sfb status`` explains, in the order the summary counts them."""

BAR_WIDTH = 14
SOON_FRACTION = 0.10
"""A file with less than this share of the TTL left expires soon..."""
SOON_SECONDS = 3_600.0
"""...and so does one with less than an hour left, whichever gives the earlier warning."""


@frozen
class StatusRow:
    """One unfinished file as the operator sees it (the endpoint already redacted)."""

    file_id: str
    state: str
    received: int
    partition_count: int | None
    bytes: int
    first_seen: float | None
    age_seconds: float | None
    expires_in_seconds: float | None
    expires_soon: bool
    endpoint: str | None
    next_step: str


def status_rows(files: Iterable[FileSummary], now: float, ttl_seconds: float) -> list[StatusRow]:
    """One row per file, in the report's order."""
    return [_row(summary, now, ttl_seconds) for summary in files]


def status_text(rows: Sequence[StatusRow]) -> str:
    """The table, each file followed by its next step, and the summary line."""
    if not rows:
        return summary_line(rows) + "\n"
    header = ("FILE ID", "STATE", "PROGRESS", "BYTES", "AGE", "EXPIRES IN", "ENDPOINT")
    cells = [
        (
            row.file_id,
            row.state,
            f"{progress_bar(row.received, row.partition_count)} "
            f"{_count(row.received, row.partition_count)}",
            human_bytes(row.bytes),
            "-" if row.age_seconds is None else human_duration(row.age_seconds),
            _expiry_cell(row),
            row.endpoint or "-",
        )
        for row in rows
    ]
    right_aligned = {3, 4, 5}
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(widths[i]) if i in right_aligned else value.ljust(widths[i])
            for i, value in enumerate(values)
        ]
        return "  ".join(padded).rstrip()

    lines = [line(header)]
    for row, values in zip(rows, cells, strict=True):
        lines.append(line(values))
        lines.append(f"    next: {row.next_step}")
    lines.append(summary_line(rows))
    return "\n".join(lines) + "\n"


def summary_line(rows: Sequence[StatusRow]) -> str:
    """``3 files not finished: 1 collecting, 1 complete, 1 failed; 1 expires soon``."""
    total = f"{len(rows)} file{'' if len(rows) == 1 else 's'} not finished"
    if not rows:
        return total
    counts = Counter(row.state for row in rows)
    ordered = [s for s in KNOWN_STATES if s in counts] + sorted(set(counts) - set(KNOWN_STATES))
    by_state = ", ".join(f"{counts[state]} {state}" for state in ordered)
    soon = sum(row.expires_soon for row in rows)
    return f"{total}: {by_state}; {soon} expire{'s' if soon == 1 else ''} soon"


def status_document(rows: Sequence[StatusRow]) -> list[dict[str, object]]:
    """What ``sfb status --json`` prints: stable snake_case keys, times in UTC ISO 8601."""
    return [
        {
            "file_id": row.file_id,
            "state": row.state,
            "received": row.received,
            "partition_count": row.partition_count,
            "bytes": row.bytes,
            "first_seen": None if row.first_seen is None else iso_utc(row.first_seen),
            "age_seconds": None if row.age_seconds is None else math.floor(row.age_seconds),
            "expires_in_seconds": (
                None if row.expires_in_seconds is None else math.floor(row.expires_in_seconds)
            ),
            "expires_soon": row.expires_soon,
            "endpoint": row.endpoint,
            "next_step": row.next_step,
        }
        for row in rows
    ]


def progress_bar(received: int, total: int | None, width: int = BAR_WIDTH) -> str:
    """``[#####---------]``: full only when every partition is in; ``?`` when the count is
    unknown."""
    if total is None or total <= 0:
        return f"[{'?' * width}]"
    filled = min(max(received * width // total, 0), width)
    return f"[{'#' * filled}{'-' * (width - filled)}]"


def human_bytes(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``6.0 MiB``, ``5.0 GiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def human_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``: rounded down, so time left is never overstated."""
    whole = max(math.floor(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3_600:
        return f"{whole // 60}m"
    if whole < 86_400:
        return f"{whole // 3_600}h{whole % 3_600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3_600:02d}h"


def iso_utc(epoch_seconds: float) -> str:
    """``2024-05-01T12:00:00Z``."""
    moment = datetime.fromtimestamp(math.floor(epoch_seconds), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_expiring_soon(seconds_left: float, ttl_seconds: float) -> bool:
    """Less than 10 % of the TTL or an hour left (or already overdue)."""
    return seconds_left < max(SOON_FRACTION * ttl_seconds, SOON_SECONDS)


def _row(summary: FileSummary, now: float, ttl_seconds: float) -> StatusRow:
    state = _state(summary)
    first_seen = summary.since if summary.since > 0 else None
    expires_in = None
    if state == COLLECTING and first_seen is not None:
        expires_in = first_seen + ttl_seconds - now
    soon = expires_in is not None and is_expiring_soon(expires_in, ttl_seconds)
    return StatusRow(
        file_id=str(summary.file_id),
        state=state,
        received=summary.received,
        partition_count=summary.partition_count,
        bytes=summary.size,
        first_seen=first_seen,
        age_seconds=None if first_seen is None else max(now - first_seen, 0.0),
        expires_in_seconds=expires_in,
        expires_soon=soon,
        endpoint=_printable(redact(summary.put_endpoint)) if summary.put_endpoint else None,
        next_step=_next_step(state, summary, expires_in, soon, now),
    )


def _state(summary: FileSummary) -> str:
    status = _printable(summary.status)
    count = summary.partition_count
    if status == COLLECTING and count is not None and summary.received >= count > 0:
        return COMPLETE
    return status


def _next_step(
    state: str, summary: FileSummary, expires_in: float | None, soon: bool, now: float
) -> str:
    file_id = str(summary.file_id)
    redrive = f"sfb redrive {file_id}"
    if state == COLLECTING:
        missing, arrive = _missing(summary)
        if expires_in is None or not soon:
            return f"waiting for {missing}; nothing to do while the producer is sending"
        at = iso_utc(now + expires_in)
        if expires_in <= 0:
            return (
                f"past its expiry ({at}): the next expiry run gives it up unless its {missing} "
                f"{arrive} first"
            )
        return (
            f"expires soon: given up by the first expiry run after {at} unless its {missing} "
            f"{arrive}"
        )
    if state == COMPLETE:
        return f"complete but never uploaded: {redrive}"
    if state == ASSEMBLING:
        return (
            "being uploaded by an invocation: wait for its claim to end (CLAIM_LEASE_SECONDS), "
            f"then {redrive} if it is still listed"
        )
    if state == FAILED:
        return (
            f"upload refused for good: check the endpoint and the kept copy failed/{file_id}, "
            f"then {redrive} (or sfb redrive --all-failed)"
        )
    if state == EXPIRED:
        return (
            f"given up by expiry (its record: expired/{file_id}.json): the producer must send "
            "the whole file again; on the dynamodb backend under a new putEndpoint, as chunks "
            "for this one are refused while its tombstone lives (STATE_TTL_SECONDS)"
        )
    return (
        f"unknown state {state!r} (is this sfb older than the service?): inspect the file in "
        "the bucket or table by hand"
    )


def _missing(summary: FileSummary) -> tuple[str, str]:
    """The missing chunks, and the verb that agrees with them."""
    if summary.partition_count is None:
        return "missing chunks", "arrive"
    missing = max(summary.partition_count - summary.received, 0)
    if missing == 1:
        return "1 missing chunk", "arrives"
    return f"{missing} missing chunks", "arrive"


def _count(received: int, total: int | None) -> str:
    if total is None:
        return f"{received or '?'}/?"
    return f"{received}/{total}"


def _expiry_cell(row: StatusRow) -> str:
    if row.expires_in_seconds is None:
        return "-"
    if row.expires_in_seconds <= 0:
        return "overdue"
    left = human_duration(row.expires_in_seconds)
    return f"{left} (soon)" if row.expires_soon else left


def _printable(text: str) -> str:
    """Text from the bucket or table, safe to print: no control characters."""
    return "".join(c if c.isprintable() else "?" for c in text)
