"""What the service writes to CloudWatch Logs: its log lines and EMF metrics for the
realistic section's local layout and small files, at the default LOG_LEVEL (INFO) and at
WARNING.

`make bench` turns both off (they would run through its table). CloudWatch Logs bills each
GB ingested, which for many small files passes what their AWS requests cost. Lambda's own
lines (a start and a report an invocation) are not counted. ``python -m bench.log_volume``
runs each once; the README quotes it.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable

from attrs import frozen

from adapters.emf_metrics import EmfMetrics
from adapters.json_logging import JsonFormatter
from adapters.settings import BackendName
from bench.realistic import PRICES_AS_OF, Shape, local_interleaved, small_files
from bench.world import World, open_world

LOGS_INGESTED_PER_GB = 0.50
"""CloudWatch Logs, standard class, us-east-1, per GB ingested, as of PRICES_AS_OF."""
GB = 1024**3
LEVELS = ("INFO", "WARNING")


class Tally(io.TextIOBase):
    """Where the service writes while a run goes: bytes by kind of line (the EMF documents,
    or a log line's message), none of it printed."""

    def __init__(self) -> None:
        self.bytes: Counter[str] = Counter()

    def write(self, text: str, /) -> int:
        for line in text.splitlines(keepends=True):
            self.bytes[_kind(line)] += len(line.encode())
        return len(text)


def _kind(line: str) -> str:
    if line.startswith('{"_aws"'):
        return "metrics (EMF)"
    marker = '"message": "'
    start = line.find(marker)
    return line[start + len(marker) :].split('"', 1)[0] if start >= 0 else "other"


@frozen
class LogVolumeRow:
    what: str
    level: str
    units: float
    """GiB moved, or files."""
    unit: str
    bytes: dict[str, int]

    @property
    def per_unit(self) -> float:
        return sum(self.bytes.values()) / self.units

    @property
    def dollars_per_unit(self) -> float:
        return self.per_unit / GB * LOGS_INGESTED_PER_GB


def measure(world: World, shape: Shape, tally: Tally) -> list[LogVolumeRow]:
    rows: list[LogVolumeRow] = []
    for level in LEVELS:
        world.log_level = level
        world.metrics = lambda: EmfMetrics(write=tally.write)
        tally.bytes.clear()
        layout = local_interleaved(world, shape)
        moved = layout.file_bytes / GB
        rows.append(LogVolumeRow(layout.layout, level, moved, "GiB", dict(tally.bytes)))
        tally.bytes.clear()
        small = small_files(world, BackendName.LOCAL, shape)
        files = (small.invocations + 1) * small.files_per_invocation  # the first one too
        rows.append(LogVolumeRow("small files, local", level, files, "file", dict(tally.bytes)))
    return rows


def main(say: Callable[[str], None] = print, shape: Shape | None = None) -> list[LogVolumeRow]:
    tally = Tally()
    # The service's log lines go to the tally, formatted as on Lambda (a JSON handler there
    # already, so the containers add none of their own), and its EMF lines through measure.
    logger = logging.getLogger("sfb")
    handlers = list(logger.handlers)
    handler = logging.StreamHandler(tally)
    handler.setFormatter(JsonFormatter())
    logger.handlers[:] = [handler]
    try:
        with open_world() as world:
            rows = measure(world, shape or Shape(small_invocations=5, small_seconds=100.0), tally)
    finally:
        logger.handlers[:] = handlers
    say(f"CloudWatch Logs at ${LOGS_INGESTED_PER_GB} a GB ingested ({PRICES_AS_OF}):")
    for row in rows:
        kinds = ", ".join(f"{kind} {n / row.units:,.0f}" for kind, n in row.bytes.items())
        scale, per = (1.0, "GiB") if row.unit == "GiB" else (1e6, "million files")
        say(
            f"  {row.what}, {row.level}: {row.per_unit:,.0f} bytes a {row.unit}, "
            f"${row.dollars_per_unit * scale:.5f} a {per} ({kinds})"
        )
    return rows


if __name__ == "__main__":
    main()
