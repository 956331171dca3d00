"""Cost: AWS requests per chunk and per file, counted as botocore makes them.

A handler on ``before-call`` of the container's own S3 and DynamoDB clients sees every
request the service sends (retries aside). A request made while a file is being completed
(claim, listing, reading chunks back, tombstone, cleanup) counts as assembly; any other as
ingest. Files of several sizes give a straight line: requests = per_chunk * chunks + per_file.
"""

from __future__ import annotations

import inspect
import threading
from collections import Counter
from collections.abc import Sequence
from types import CodeType
from typing import Any

from attrs import frozen
from dependency_injector import providers

from adapters.settings import BackendName
from application.body import READ_AHEAD_THREADS
from application.lifecycle import FileLifecycle
from application.metrics import NoMetrics
from application.shared_ingest import SharedIngestChunk
from bench.throughput import run_handler
from bench.workload import KIB, FileSpec, batches, records
from bench.world import World

INSIDE = "inside one batch"
ACROSS = "across 3 batches"
CHUNK_SIZE = KIB
"""Requests do not depend on chunk size: tiny chunks keep this section fast."""

_ASSEMBLY: frozenset[CodeType] = frozenset(
    {FileLifecycle.complete.__code__, SharedIngestChunk.complete.__code__}
)
"""Where each backend completes a file: a request below one of these is assembly's."""


class RequestCounter:
    """Counts each client's requests by (phase, service, operation)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def attach(self, client: Any, service: str) -> None:
        def before_call(model: Any, **_: Any) -> None:
            self.counts[(_phase(), service, str(model.name))] += 1

        client.meta.events.register("before-call", before_call)

    def total(self, phase: str | None = None) -> int:
        return sum(n for (p, _, _), n in self.counts.items() if phase in (None, p))


def _phase() -> str:
    if threading.current_thread().name.startswith(READ_AHEAD_THREADS):
        return "assembly"  # a part fetched ahead of the upload, on the body's own thread
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code in _ASSEMBLY:
            return "assembly"
        frame = frame.f_back
    return "ingest"


@frozen
class Line:
    """requests = per_chunk * chunks + per_file, and whether every file size fits it."""

    per_chunk: float
    per_file: float
    exact: bool

    def at(self, chunks: int) -> float:
        return self.per_chunk * chunks + self.per_file


def fit(points: Sequence[tuple[int, int]]) -> Line:
    (x0, y0), (x1, y1) = points[0], points[-1]
    slope = (y1 - y0) / (x1 - x0)
    intercept = y0 - slope * x0
    exact = all(abs(slope * x + intercept - y) < 1e-9 for x, y in points)
    return Line(slope, intercept, exact)


@frozen
class CostRow:
    backend: str
    layout: str
    chunks: tuple[int, ...]
    ingest: Line
    assembly: Line
    total: Line
    operations: dict[str, int]
    """Requests of the largest file, by ``phase service.Operation``."""


AWS_BACKENDS = (BackendName.LOCAL, BackendName.DYNAMODB)
"""The backends whose state costs AWS requests; the redis backend's are in the realistic
section (no AWS request while chunks fit in Redis)."""


def run(world: World, chunk_counts: Sequence[int]) -> list[CostRow]:
    if len(chunk_counts) < 2 or any(n % 3 for n in chunk_counts):
        raise ValueError("at least two file sizes, each a multiple of 3 chunks")
    return [
        measure(world, backend, layout, chunk_counts)
        for backend in AWS_BACKENDS
        for layout in (INSIDE, ACROSS)
    ]


def measure(
    world: World, backend: BackendName, layout: str, chunk_counts: Sequence[int]
) -> CostRow:
    counters = [count_one_file(world, backend, layout, n) for n in chunk_counts]

    def line(phase: str | None) -> Line:
        return fit([(n, c.total(phase)) for n, c in zip(chunk_counts, counters, strict=True)])

    largest = counters[-1].counts
    return CostRow(
        backend=backend.value,
        layout=layout,
        chunks=tuple(chunk_counts),
        ingest=line("ingest"),
        assembly=line("assembly"),
        total=line(None),
        operations={
            f"{phase} {service}.{operation}": n
            for (phase, service, operation), n in sorted(largest.items())
        },
    )


def count_one_file(world: World, backend: BackendName, layout: str, chunks: int) -> RequestCounter:
    """One file through a fresh warm container, every request of it counted."""
    container = world.container(backend)
    container.metrics.override(providers.Object(NoMetrics()))  # no EMF lines in the table
    counter = RequestCounter()
    counter.attach(container.s3_client(), "s3")
    counter.attach(container.dynamodb_client(), "dynamodb")
    spec = FileSpec(world.endpoint("cost", backend.value), chunks * CHUNK_SIZE, CHUNK_SIZE)
    batch_size = chunks if layout == INSIDE else chunks // 3
    run_handler(container, list(batches(records(spec, world.sequence), batch_size)))
    world.check_upload(spec, spec.sha256())
    return counter
