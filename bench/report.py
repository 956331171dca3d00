"""The goals, the table a person reads and the JSON a program reads, from one set of results."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from attrs import frozen

from bench.cost import INSIDE as COST_INSIDE
from bench.cost import CostRow
from bench.hotspots import Hotspots
from bench.latency import LatencyResult
from bench.memory import MemoryRow
from bench.realistic import (
    EXPIRY_SECONDS,
    FLOOR_PARALLEL_GETS,
    GOAL_LAYOUTS,
    LAMBDA_MEMORY_MB,
    PRICES_AS_OF,
    RealisticResults,
    SmallFilesRow,
)
from bench.throughput import ACROSS, INSIDE, ThroughputRow
from bench.workload import MIB, size_label
from entrypoints.events import INVOCATION_PAYLOAD_LIMIT

THROUGHPUT_VS_STDLIB = 3.0
THROUGHPUT_VS_FAST = 0.6
MEMORY_GROWTH = 1.2
DYNAMODB_INGEST_PER_CHUNK = 2.0
LOCAL_DOLLARS_PER_GIB = 0.0025
DYNAMODB_DOLLARS_PER_GIB = 0.004
DYNAMODB_OVER_FLOOR = 3.0
LOCAL_OVER_FLOOR = 2.2
"""The local backend's completing invocation against the floor before issue 12: no worse."""
SMALL_FILES_PER_SECOND = {"local": 400.0, "dynamodb": 150.0}


@frozen
class Goal:
    name: str
    target: str
    measured: str
    value: float
    passed: bool


@frozen
class Results:
    mode: str
    machine: dict[str, Any]
    plan: dict[str, Any]
    realistic: RealisticResults | None = None
    throughput: tuple[ThroughputRow, ...] = ()
    cost: tuple[CostRow, ...] = ()
    memory: tuple[MemoryRow, ...] = ()
    latency: LatencyResult | None = None
    hotspots: tuple[Hotspots, ...] = ()
    seconds: float = 0.0


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    versions: dict[str, str | None] = {}
    for package in ("boto3", "moto", "requests", "orjson", "pybase64", "jsonschema"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def goals(results: Results) -> list[Goal]:
    found: list[Goal] = _realistic_goals(results.realistic) if results.realistic else []
    # The baseline chains decode, write and PUT: the handler does the same work when a file
    # completes inside its batch. Files spread over batches are also written to S3 at each
    # batch end, work the chains never do; their rows are reported, not held to the ratios.
    for row in (r for r in results.throughput if r.layout == INSIDE):
        chunk = f"{size_label(row.chunk_size)} chunks, files {row.layout}"
        found.append(
            Goal(
                f"throughput, {chunk}: handler vs standard-library chain",
                f">= {THROUGHPUT_VS_STDLIB:g} x",
                f"{row.handler_vs_stdlib:.2f} x ({row.handler_mb_s:.0f} vs "
                f"{row.stdlib_mb_s:.0f} MB/s)",
                row.handler_vs_stdlib,
                row.handler_vs_stdlib >= THROUGHPUT_VS_STDLIB,
            )
        )
        found.append(
            Goal(
                f"throughput, {chunk}: handler vs fast-decoder chain",
                f">= {THROUGHPUT_VS_FAST:g} x",
                f"{row.handler_vs_fast:.2f} x ({row.handler_mb_s:.0f} vs {row.fast_mb_s:.0f} MB/s)",
                row.handler_vs_fast,
                row.handler_vs_fast >= THROUGHPUT_VS_FAST,
            )
        )
    if len(results.memory) >= 2:
        small, large = results.memory[0], results.memory[-1]
        growth = large.ours.peak_kib / small.ours.peak_kib
        found.append(
            Goal(
                f"peak RSS at {size_label(large.size)} vs at {size_label(small.size)} (ours)",
                f"<= {MEMORY_GROWTH:g} x",
                f"{growth:.2f} x ({_mib(large.ours.peak_kib)} vs {_mib(small.ours.peak_kib)} MiB)",
                growth,
                growth <= MEMORY_GROWTH,
            )
        )
    for cost in results.cost:
        if cost.backend == "local" and cost.layout == COST_INSIDE:
            found.append(
                Goal(
                    "local backend: AWS requests for files completing inside a batch",
                    "0 per chunk",
                    f"{cost.total.per_chunk:g} per chunk + {cost.total.per_file:g} per file",
                    cost.total.per_chunk,
                    cost.total.per_chunk == 0 and cost.total.exact,
                )
            )
        if cost.backend == "dynamodb":
            found.append(
                Goal(
                    f"dynamodb backend, files {cost.layout}: ingest requests",
                    f"<= {DYNAMODB_INGEST_PER_CHUNK:g} per chunk + a constant per file",
                    f"{cost.ingest.per_chunk:g} per chunk + {cost.ingest.per_file:g} per file"
                    + ("" if cost.ingest.exact else " (not linear in chunks)"),
                    cost.ingest.per_chunk,
                    cost.ingest.per_chunk <= DYNAMODB_INGEST_PER_CHUNK and cost.ingest.exact,
                )
            )
    return found


def _realistic_goals(realistic: RealisticResults) -> list[Goal]:
    found: list[Goal] = []
    for row in realistic.layouts:
        if row.layout not in GOAL_LAYOUTS:
            continue  # reported beside them: the local stream, redis (its goal is the
            # node's price, not requests), the large file and the long endpoints
        target = LOCAL_DOLLARS_PER_GIB if row.backend == "local" else DYNAMODB_DOLLARS_PER_GIB
        found.append(
            Goal(
                f"{row.backend} backend, the stream as AWS delivers it: $ per GiB moved",
                f"<= ${target:g}",
                f"${row.dollars_per_gib:.4f} ({row.requests_per_chunk:.2f} requests per chunk; "
                f"floor ${row.durable_floor_per_gib:.4f})",
                row.dollars_per_gib,
                row.dollars_per_gib <= target,
            )
        )
        ratio = LOCAL_OVER_FLOOR if row.backend == "local" else DYNAMODB_OVER_FLOOR
        found.append(
            Goal(
                f"{row.backend} backend: completing invocation vs the S3-read-and-PUT floor",
                f"<= {ratio:g} x",
                f"{row.over_floor:.2f} x ({row.completing_median * 1000:.0f} vs "
                f"{row.floor_median * 1000:.0f} ms)",
                row.over_floor,
                row.over_floor <= ratio,
            )
        )
    for small in realistic.small_files:
        if small.backend not in SMALL_FILES_PER_SECOND:
            continue
        target = SMALL_FILES_PER_SECOND[small.backend]
        found.append(
            Goal(
                f"{small.backend} backend: small single-chunk files per second, one container",
                f">= {target:g}",
                f"{small.files_per_second:.0f}",
                small.files_per_second,
                small.files_per_second >= target,
            )
        )
    return found


def _realistic_json(realistic: RealisticResults) -> dict[str, Any]:
    return {
        "aws_delay_seconds": realistic.aws_delay_seconds,
        "put_answer_seconds": realistic.put_answer_seconds,
        "prices_as_of": PRICES_AS_OF,
        "layouts": [
            attrs.asdict(row)
            | {
                "requests_per_chunk": row.requests_per_chunk,
                "dollars": row.dollars,
                "dollars_per_gib": row.dollars_per_gib,
                "durable_floor_per_gib": row.durable_floor_per_gib,
                "completing_median": row.completing_median,
                "floor_median": row.floor_median,
                "over_floor": row.over_floor,
            }
            for row in realistic.layouts
        ],
        "small_files": [
            attrs.asdict(row)
            | {
                "files_per_second": row.files_per_second,
                "requests_per_file": row.requests_per_file,
            }
            for row in realistic.small_files
        ],
    }


def to_json(results: Results) -> dict[str, Any]:
    return {
        "mode": results.mode,
        "machine": results.machine,
        "plan": results.plan,
        "seconds": round(results.seconds, 1),
        "realistic": _realistic_json(results.realistic) if results.realistic else None,
        "throughput": [
            attrs.asdict(row)
            | {"handler_vs_stdlib": row.handler_vs_stdlib, "handler_vs_fast": row.handler_vs_fast}
            for row in results.throughput
        ],
        "cost": [attrs.asdict(row) for row in results.cost],
        "memory": [
            attrs.asdict(row) | {"ours_vs_naive": row.ours_vs_naive} for row in results.memory
        ],
        "latency": (
            attrs.asdict(results.latency) | {"over_floor": results.latency.over_floor}
            if results.latency is not None
            else None
        ),
        "hotspots": [attrs.asdict(spots) for spots in results.hotspots],
        "goals": [attrs.asdict(goal) for goal in goals(results)],
    }


def write_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(to_json(results), indent=2) + "\n", encoding="utf-8")


def render(results: Results) -> str:
    m = results.machine
    lines = [
        f"streaming-file-builder benchmark ({results.mode}): {m['cpu_count']} CPUs "
        f"({m['cpu_model'] or 'unknown model'}), {m['implementation']} {m['python']}, "
        f"{results.seconds:.0f} s",
    ]
    if results.realistic is not None:
        lines += ["", _layouts(results.realistic), "", _small_files(results.realistic)]
    if results.throughput:
        lines += ["", _throughput(results.throughput)]
    if results.cost:
        lines += ["", _cost(results.cost)]
    if results.memory:
        lines += ["", _memory(results.memory)]
    if results.latency is not None:
        lines += ["", _latency(results.latency)]
    for spots in results.hotspots:
        lines += ["", _hotspots(spots)]
    found = goals(results)
    if found:
        lines += ["", "Goals"]
        lines += [
            f"  [{'PASS' if goal.passed else 'FAIL'}] {goal.name}: {goal.measured} "
            f"(goal {goal.target})"
            for goal in found
        ]
    return "\n".join(lines)


def _layouts(realistic: RealisticResults) -> str:
    rows = realistic.layouts
    first = rows[0]
    head = (
        "A. What a user pays: the stream as AWS delivers it. Files of "
        f"{size_label(first.file_bytes // first.files)}, {size_label(first.chunk_size)} chunks, "
        f"invocations cut at {INVOCATION_PAYLOAD_LIMIT / 1e6:g} MB of event; every S3 and "
        f"DynamoDB request {realistic.aws_delay_seconds * 1000:.0f} ms late (delay proxies in "
        "front of moto, and of dynalite for DynamoDB, each in a process of its own, so the "
        "handler's time holds none of theirs). "
        f"$ at us-east-1 list prices of {PRICES_AS_OF}: S3 requests, DynamoDB on-demand units "
        f"from item sizes, Lambda at {LAMBDA_MEMORY_MB} MB for the handler's time and per "
        "request; expiry: what the items a layout leaves in the state table's index of open "
        f"files cost the expiry, every {EXPIRY_SECONDS / 60:g} minutes, until their TTL; left "
        "out: Kinesis, S3 storage, CloudWatch, transfer. Completing = start of the "
        "invocation holding a file's last chunk to the upload's last byte, median of the files; "
        f"floor = the file's chunk-sized pieces read back from S3, {FLOOR_PARALLEL_GETS} at a "
        "time through the same proxy, then one PUT. Local: three producers' files interleaved "
        "record by record on one shard, every 7th invocation on a second warm container; "
        "dynamodb and redis: the same stream spread over 4 shards, a container each, taken in "
        "turn; redis reached directly (sub-millisecond, no delay), its $ leave out the node's "
        "hours (about $0.016 an hour for a cache.t4g.micro), the bulk of its cost. Reported "
        "only: the local stream's row (three producers each sending its files one after "
        "another, interleaved record by record, so that files finish all along), and the last "
        "two rows: one large file spread the same way, its digests in segment items, and the "
        "dynamodb layout with the endpoints a role's presigned URLs are"
    )
    table = _table(
        [
            "layout",
            "invocations",
            "req/chunk",
            "WCU/chunk",
            "$/GiB",
            "S3+DDB+Lambda+expiry",
            "MB/s",
            "completing",
            "floor",
            "ratio",
        ],
        [
            [
                row.layout,
                f"{row.invocations} x {row.records_per_invocation:.1f}",
                f"{row.requests_per_chunk:.2f}",
                f"{row.write_units / row.chunks:.2f}",
                f"{row.dollars_per_gib:.4f}",
                " + ".join(
                    f"{value * (1024 * MIB) / row.file_bytes:.4f}" for value in row.dollars.values()
                ),
                f"{row.mb_s:.1f}",
                f"{row.completing_median * 1000:.0f} ms",
                f"{row.floor_median * 1000:.0f} ms",
                f"{row.over_floor:.2f} x",
            ]
            for row in rows
        ],
    )
    details = [
        _wrap(
            f"   {row.backend}, {row.chunks} chunks: "
            + (
                ", ".join(f"{kind} {n / row.chunks:.2f}" for kind, n in row.requests.items())
                + " per chunk"
                if row.requests
                else "no AWS request"
            )
            + (
                f"; {row.write_units:g} write units, {row.read_units:g} read units"
                if row.write_units or row.read_units
                else ""
            )
            + f"; floor ${row.durable_floor_per_gib:.4f} a GiB ("
            + ", ".join(term for term, _ in row.durable_floor)
            + ")"
        )
        for row in rows
    ]
    return "\n".join([_wrap(head), table, *details])


def _small_files(realistic: RealisticResults) -> str:
    rows: Sequence[SmallFilesRow] = realistic.small_files
    first = rows[0]
    head = (
        f"B. Many small files: invocations of {first.files_per_invocation} single-chunk files of "
        f"{first.file_size / 1000:g} KB ({first.payload_bytes / 1e6:.1f} MB of event), one warm "
        f"container, each PUT answered {realistic.put_answer_seconds * 1000:.0f} ms after its "
        f"body, AWS {realistic.aws_delay_seconds * 1000:.0f} ms late; files/s over the "
        "invocations after the container's first, which is timed apart"
    )
    table = _table(
        [
            "backend",
            "first invocation s",
            "invocations after",
            "s per invocation",
            "files/s",
            "requests/file",
        ],
        [
            [
                row.backend,
                f"{row.first_seconds:.2f}",
                str(row.invocations),
                f"{sum(row.seconds) / row.invocations:.2f}",
                f"{row.files_per_second:.0f}",
                f"{row.requests_per_file:.2f}",
            ]
            for row in rows
        ],
    )
    return "\n".join([_wrap(head), table])


def _throughput(rows: Sequence[ThroughputRow]) -> str:
    first = rows[0]
    head = (
        "1. Throughput, MB/s of file content, best of "
        f"{len(first.handler_seconds)} run(s); handler = local backend, one warm container; "
        "stdlib / fast = the naive chain (base64, json, base64, file, PUT) with the standard "
        "library / with pybase64 + orjson, on the same records, to the same receiver"
    )
    table = _table(
        [
            "layout",
            "chunk",
            "batch",
            "files x size",
            "batches/file",
            "handler",
            "stdlib",
            "fast",
            "h/stdlib",
            "h/fast",
        ],
        [
            [
                row.layout + (" (S3 flush)" if row.layout == ACROSS else " (ledger)"),
                size_label(row.chunk_size),
                str(row.batch_size),
                f"{row.files_per_run} x {size_label(row.bytes_per_run // row.files_per_run)}",
                str(row.batches_per_file),
                f"{row.handler_mb_s:.0f}",
                f"{row.stdlib_mb_s:.0f}",
                f"{row.fast_mb_s:.0f}",
                f"{row.handler_vs_stdlib:.2f}",
                f"{row.handler_vs_fast:.2f}",
            ]
            for row in rows
        ],
    )
    notes = (
        f"   '{ACROSS}': chunks of a file still open at a batch's end are written to S3 "
        "(moto, in this process) before the batch returns.\n"
        f"   '{INSIDE}': every file completes inside its batch: no S3 request for the file, one "
        "conditional GET and one PUT of the shard ledger a batch (here one file a batch)."
    )
    return "\n".join([_wrap(head), table, notes])


def _cost(rows: Sequence[CostRow]) -> str:
    head = (
        "2. AWS requests (botocore before-call on the container's clients), fitted over files "
        f"of {', '.join(str(n) for n in rows[0].chunks)} chunks: per chunk + per file"
    )

    def cell(line: Any) -> str:
        return f"{line.per_chunk:.3g} + {line.per_file:.3g}" + ("" if line.exact else " ~")

    table = _table(
        ["backend", "layout", "ingest", "assembly", "total"],
        [
            [row.backend, row.layout, cell(row.ingest), cell(row.assembly), cell(row.total)]
            for row in rows
        ],
    )
    largest = rows[0].chunks[-1]
    details = [
        _wrap(
            f"   {row.backend}, {row.layout}, {largest} chunks: "
            + (", ".join(f"{name} {n}" for name, n in row.operations.items()) or "no request")
        )
        for row in rows
    ]
    crooked = any(not line.exact for row in rows for line in (row.ingest, row.assembly))
    legend = ["   ~ : the file sizes do not fall on one line"] if crooked else []
    return "\n".join([_wrap(head), table, *legend, *details])


def _memory(rows: Sequence[MemoryRow]) -> str:
    head = (
        "3. Peak RSS (VmHWM) of a fresh process assembling and uploading one file, "
        f"{size_label(rows[0].chunk_size)} chunks in batches of {rows[0].batch_size} made one "
        "batch at a time; 'setup' = peak before the first record; naive = decode, keep every "
        "chunk, b''.join, PUT"
    )
    table = _table(
        [
            "file",
            "ours MiB",
            "ours setup",
            "ours s",
            "naive MiB",
            "naive setup",
            "naive s",
            "ours/naive",
        ],
        [
            [
                size_label(row.size),
                _mib(row.ours.peak_kib),
                _mib(row.ours.setup_kib),
                f"{row.ours.seconds:.1f}",
                _mib(row.naive.peak_kib),
                _mib(row.naive.setup_kib),
                f"{row.naive.seconds:.1f}",
                f"{row.ours_vs_naive:.2f}",
            ]
            for row in rows
        ],
    )
    probes = [probe for row in rows for probe in (row.ours, row.naive)]
    inherited = sorted({_mib(probe.ru_maxrss_kib) for probe in probes}, key=int)
    note = _wrap(
        "   (ru_maxrss read in the same children: "
        f"{', '.join(inherited)} MiB; Linux carries the parent's peak into a child's ru_maxrss "
        "across fork and exec, so it does not measure the child)"
    )
    return "\n".join([_wrap(head), table, note])


def _latency(result: LatencyResult) -> str:
    head = (
        f"4. Latency, {size_label(result.size)} file, {size_label(result.chunk_size)} chunks, "
        f"batches of {result.batch_size} (the last holds {result.final_batch_records}): from "
        "the final invocation's start, median"
    )
    table = _table(
        ["to upload's last byte", "to handler return", "plain PUT of the file", "ratio"],
        [
            [
                f"{result.to_last_byte_seconds * 1000:.0f} ms",
                f"{result.to_return_seconds * 1000:.0f} ms",
                f"{result.put_floor_seconds * 1000:.0f} ms",
                f"{result.over_floor:.2f} x",
            ]
        ],
    )
    return "\n".join([_wrap(head), table])


def _hotspots(spots: Hotspots) -> str:
    head = (
        f"5. Where the handler's time goes: cProfile, one run, {size_label(spots.size)} "
        f"{spots.layout}, {size_label(spots.chunk_size)} chunks, batches of {spots.batch_size} "
        "(this thread only; cumulative, nested)"
    )
    stages = _table(
        ["stage", "seconds", "share"],
        [
            ["  " * share.depth + share.label, f"{share.seconds:.3f}", f"{share.share:.0%}"]
            for share in spots.stages
        ],
    )
    leaves = _table(
        ["own time (leaf)", "seconds", "share"],
        [[share.label, f"{share.seconds:.3f}", f"{share.share:.0%}"] for share in spots.leaves],
    )
    return "\n".join([_wrap(head), stages, leaves])


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return (
            "   "
            + "  ".join(
                cell.ljust(width) if index == 0 else cell.rjust(width)
                for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return "\n".join([line(headers), "   " + "  ".join("-" * w for w in widths), *map(line, rows)])


def _wrap(text: str, width: int = 100) -> str:
    return textwrap.fill(text, width=width, subsequent_indent="   ")


def _mib(kib: int) -> str:
    return f"{kib * 1024 / MIB:.0f}"
