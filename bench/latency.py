"""Latency: from the invocation that holds a file's last chunk to the upload's last byte.

The floor beside it is a plain PUT of a file of the same size from disk to the same
receiver: the part of the latency no assembler can avoid.
"""

from __future__ import annotations

import statistics
import time

from attrs import frozen

from bench.baselines import plain_session, put_file
from bench.throughput import run_handler
from bench.workload import FileSpec, batches, records
from bench.world import BenchError, World
from entrypoints.lambda_handler import handle


@frozen
class LatencyResult:
    size: int
    chunk_size: int
    batch_size: int
    final_batch_records: int
    to_last_byte_seconds: float
    """Median: final invocation starts -> the receiver has the whole body."""
    to_return_seconds: float
    """Median: final invocation starts -> the handler returns."""
    put_floor_seconds: float
    """Median: one PUT of a file of the same size, from disk, with requests."""
    samples: tuple[float, ...]

    @property
    def over_floor(self) -> float:
        return self.to_last_byte_seconds / self.put_floor_seconds


def run(world: World, size: int, chunk_size: int, batch_size: int, repeats: int) -> LatencyResult:
    container = world.container()
    to_last_byte: list[float] = []
    to_return: list[float] = []
    floor: list[float] = []
    final_records = 0
    for _ in range(repeats):
        spec = FileSpec(world.endpoint("latency", size), size, chunk_size)
        events = list(batches(records(spec, world.sequence), batch_size))
        *earlier, final = events
        final_records = len(final["Records"])
        run_handler(container, earlier)
        started = time.perf_counter()
        response = handle(container, final, None)
        returned = time.perf_counter()
        if response["batchItemFailures"]:
            raise BenchError(f"the handler asked for redelivery: {response}")
        world.check_upload(spec, spec.sha256())
        to_last_byte.append(world.receiver.finished_at(spec.path) - started)
        to_return.append(returned - started)
        floor.append(_plain_put(world, size))
    return LatencyResult(
        size=size,
        chunk_size=chunk_size,
        batch_size=batch_size,
        final_batch_records=final_records,
        to_last_byte_seconds=statistics.median(to_last_byte),
        to_return_seconds=statistics.median(to_return),
        put_floor_seconds=statistics.median(floor),
        samples=tuple(to_last_byte),
    )


def _plain_put(world: World, size: int) -> float:
    path = world.scratch("latency-floor") / "file.bin"
    spec = FileSpec(world.endpoint("latency-floor", size), size, size)
    with path.open("wb") as out:
        for content in spec.contents():
            out.write(content)
    with plain_session() as session, path.open("rb") as body:
        started = time.perf_counter()
        put_file(session, spec.endpoint, body)
        seconds = world.receiver.finished_at(spec.path) - started
    path.unlink()
    return seconds
