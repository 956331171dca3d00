"""What one ``python -m bench`` measures, and in which order: a plan, run in one world."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
from attrs import field, frozen

from bench import cost, hotspots, latency, memory, realistic, throughput, write_units
from bench.report import Results, machine
from bench.workload import GIB, KIB, MIB
from bench.world import open_world


@frozen
class Plan:
    mode: str
    realistic: realistic.Shape = field(factory=realistic.Shape)
    throughput_bytes: int = 64 * MIB
    chunk_sizes: tuple[int, ...] = (256 * KIB, MIB)
    batch_size: int = 10
    repeats: int = 3
    cost_chunks: tuple[int, ...] = (6, 12, 24)
    memory_sizes: tuple[int, ...] = (64 * MIB, 256 * MIB, GIB)
    memory_chunk_size: int = MIB
    latency_bytes: int = 64 * MIB
    latency_chunk_size: int = MIB
    hotspots: bool = True
    write_unit_chunks: tuple[int, ...] = ()
    """Files of this many chunks for the write-unit probe (bench/write_units.py); none skips it."""
    sections: tuple[str, ...] = (
        "realistic",
        "throughput",
        "cost",
        "memory",
        "latency",
        "hotspots",
    )


FULL = Plan("full", write_unit_chunks=(300, 600))
QUICK = Plan(
    "quick",
    realistic=realistic.Shape(
        file_size=3 * MIB,
        large_file_size=None,
        stream_file_size=MIB,
        stream_files=6,
        small_files=20,
        small_invocations=1,
    ),
    throughput_bytes=24 * MIB,
    repeats=1,
    cost_chunks=(3, 6),
    memory_sizes=(8 * MIB, 32 * MIB),
    latency_bytes=16 * MIB,
    write_unit_chunks=(150, 300),
)


def run(plan: Plan, say: Callable[[str], None] = print) -> Results:
    """Run the plan's sections in one world; ``say`` hears what is being measured."""
    started = time.perf_counter()
    results = Results(plan.mode, machine(), attrs.asdict(plan))
    with open_world() as world:
        if "realistic" in plan.sections:
            say("the stream as AWS delivers it: layouts, cost, latency, small files ...")
            results = attrs.evolve(results, realistic=realistic.run(world, plan.realistic))
            if plan.write_unit_chunks:
                say(write_units.describe(write_units.run(chunks=plan.write_unit_chunks)))
        if "throughput" in plan.sections:
            say("measuring throughput ...")
            results = attrs.evolve(
                results,
                throughput=tuple(
                    throughput.run(
                        world,
                        plan.throughput_bytes,
                        plan.chunk_sizes,
                        plan.batch_size,
                        plan.repeats,
                    )
                ),
            )
        if "cost" in plan.sections:
            say("counting AWS requests ...")
            results = attrs.evolve(results, cost=tuple(cost.run(world, plan.cost_chunks)))
        if "memory" in plan.sections:
            say("measuring peak memory (one process per file) ...")
            results = attrs.evolve(
                results,
                memory=tuple(
                    memory.run(world, plan.memory_sizes, plan.memory_chunk_size, plan.batch_size)
                ),
            )
        if "latency" in plan.sections:
            say("measuring latency ...")
            results = attrs.evolve(
                results,
                latency=latency.run(
                    world,
                    plan.latency_bytes,
                    plan.latency_chunk_size,
                    plan.batch_size,
                    plan.repeats,
                ),
            )
        if "hotspots" in plan.sections:
            say("profiling the handler ...")
            results = attrs.evolve(
                results,
                hotspots=tuple(
                    hotspots.run(world, layout, plan.throughput_bytes, chunk_size, plan.batch_size)
                    for layout in (throughput.ACROSS, throughput.INSIDE)
                    for chunk_size in plan.chunk_sizes[-1:]
                ),
            )
    return attrs.evolve(results, seconds=time.perf_counter() - started)
