"""Throughput: MB/s of file content through the handler, beside two naive chains.

Every run uses the same records for the three contenders, built before the clock starts, and
uploads to the same receiver. The handler runs on one warm container (local backend).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import requests
from attrs import frozen

from bench.baselines import FAST, STDLIB, Decoders, naive_chain, plain_session
from bench.workload import Event, FileSpec, batches, records
from bench.world import BenchError, World
from entrypoints.container import Container
from entrypoints.lambda_handler import handle

ACROSS = "across batches"
"""One file whose chunks span many batches: each batch end makes its chunks durable in S3."""

INSIDE = "inside a batch"
"""Files of one batch each: complete before the batch ends, so no S3 request for the file
(the shard ledger's GET and PUT are the batch's)."""


@frozen
class ThroughputRow:
    layout: str
    chunk_size: int
    batch_size: int
    files_per_run: int
    bytes_per_run: int
    batches_per_file: int
    handler_mb_s: float
    stdlib_mb_s: float
    fast_mb_s: float
    handler_seconds: tuple[float, ...]
    stdlib_seconds: tuple[float, ...]
    fast_seconds: tuple[float, ...]

    @property
    def handler_vs_stdlib(self) -> float:
        return self.handler_mb_s / self.stdlib_mb_s

    @property
    def handler_vs_fast(self) -> float:
        return self.handler_mb_s / self.fast_mb_s


def run(
    world: World,
    file_bytes: int,
    chunk_sizes: Sequence[int],
    batch_size: int,
    repeats: int,
    layouts: Sequence[str] = (ACROSS, INSIDE),
) -> list[ThroughputRow]:
    return [
        measure(world, layout, file_bytes, chunk_size, batch_size, repeats)
        for layout in layouts
        for chunk_size in chunk_sizes
    ]


def file_sizes(layout: str, total: int, chunk_size: int, batch_size: int) -> list[int]:
    """``ACROSS``: one file of ``total`` bytes; ``INSIDE``: files of one batch's chunks."""
    if layout == ACROSS:
        return [total]
    one_batch = chunk_size * batch_size
    return [one_batch] * max(1, total // one_batch)


def measure(
    world: World, layout: str, total: int, chunk_size: int, batch_size: int, repeats: int
) -> ThroughputRow:
    sizes = file_sizes(layout, total, chunk_size, batch_size)
    if layout == ACROSS and sizes[0] <= chunk_size * batch_size:
        raise ValueError(f"a {total}-byte file of {chunk_size}-byte chunks fits in one batch")
    container = world.container()
    workdir = world.scratch("throughput")
    seconds: dict[str, list[float]] = {"handler": [], STDLIB.name: [], FAST.name: []}
    with plain_session() as session:
        for repeat in range(repeats):
            _measure_once(
                world, container, session, workdir, sizes, chunk_size, batch_size, repeat, seconds
            )
    total_bytes = sum(sizes)
    return ThroughputRow(
        layout=layout,
        chunk_size=chunk_size,
        batch_size=batch_size,
        files_per_run=len(sizes),
        bytes_per_run=total_bytes,
        batches_per_file=-(-sizes[0] // chunk_size // batch_size),
        handler_mb_s=_mb_s(total_bytes, seconds["handler"]),
        stdlib_mb_s=_mb_s(total_bytes, seconds[STDLIB.name]),
        fast_mb_s=_mb_s(total_bytes, seconds[FAST.name]),
        handler_seconds=tuple(seconds["handler"]),
        stdlib_seconds=tuple(seconds[STDLIB.name]),
        fast_seconds=tuple(seconds[FAST.name]),
    )


def _measure_once(
    world: World,
    container: Container,
    session: requests.Session,
    workdir: Path,
    sizes: Sequence[int],
    chunk_size: int,
    batch_size: int,
    repeat: int,
    seconds: dict[str, list[float]],
) -> None:
    """One run of each contender on the same fresh records; their times go to ``seconds``."""
    specs = [
        FileSpec(world.endpoint("throughput", chunk_size), size, chunk_size, seed=repeat)
        for size in sizes
    ]
    stream = [record for spec in specs for record in records(spec, world.sequence)]
    events = list(batches(stream, batch_size))
    digests = [spec.sha256() for spec in specs]

    contenders: list[tuple[str, Callable[[], object]]] = [
        ("handler", partial(run_handler, container, events)),
        *(
            (
                decoders.name,
                partial(
                    naive_chain,
                    stream,
                    decoders,
                    workdir,
                    session,
                    partial(_baseline, decoders=decoders),
                ),
            )
            for decoders in (STDLIB, FAST)
        ),
    ]
    # Each contender goes first in turn, so none always meets a cold page cache.
    shift = repeat % len(contenders)
    for name, contender in contenders[shift:] + contenders[:shift]:
        seconds[name].append(timed(contender))
    for spec, digest in zip(specs, digests, strict=True):
        world.check_upload(spec, digest)
        for decoders in (STDLIB, FAST):
            world.check_upload(_baseline_spec(spec, decoders), digest)


def run_handler(container: Container, events: Sequence[Event]) -> None:
    for event in events:
        response = handle(container, event, None)
        if response["batchItemFailures"]:
            raise BenchError(f"the handler asked for redelivery: {response}")


def timed(work: Callable[[], object]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _mb_s(size: int, seconds: Sequence[float]) -> float:
    """From the best run: on a shared machine noise only ever adds time."""
    return size / min(seconds) / 1e6


def _baseline(endpoint: str, decoders: Decoders) -> str:
    """Where a naive chain PUTs a file: beside the handler's upload, not over it."""
    return endpoint.replace("/throughput/", f"/baseline-{decoders.name}/", 1)


def _baseline_spec(spec: FileSpec, decoders: Decoders) -> FileSpec:
    return FileSpec(_baseline(spec.endpoint, decoders), spec.size, spec.chunk_size, spec.seed)
