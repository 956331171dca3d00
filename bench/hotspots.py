"""Where the handler's time goes: one run under cProfile, summed by stage and by leaf.

Only this thread is profiled: the emulator's and the receiver's threads show up as time
spent waiting in socket calls. cProfile slows Python code down, so shares matter here, not
absolute figures.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from types import FunctionType
from typing import Any

from attrs import frozen

from adapters.http_uploader import RequestsUploader
from adapters.s3_storage import S3ChunkStore
from adapters.tmp_storage import TmpChunkStore
from adapters.validation import JsonSchemaRequestValidator
from application.assemble import AssembleAndUpload
from application.body import ConcatenatedReader
from application.flush import FlushPending
from application.ingest import IngestChunk
from application.lifecycle import FileLifecycle
from bench.throughput import file_sizes, run_handler
from bench.workload import FileSpec, batches, records
from bench.world import World
from entrypoints.lambda_handler import handle

STAGES: tuple[tuple[int, str, Callable[..., Any]], ...] = (
    (0, "handler, whole batch", handle),
    (1, "decode + schema check (per record)", JsonSchemaRequestValidator.validate),
    (1, "ingest: digest, store, maybe complete", IngestChunk.__call__),
    (2, "write chunk to TMP_DIR", TmpChunkStore.put),
    (2, "complete the file", FileLifecycle.complete),
    (3, "assemble + upload", AssembleAndUpload.__call__),
    (4, "HTTP PUT (requests)", RequestsUploader.upload),
    (5, "read TMP_DIR + verify sha256", ConcatenatedReader.read),
    (3, "delete pending chunks in S3", S3ChunkStore.delete),
    (1, "batch end: make chunks durable", FlushPending.__call__),
    (2, "S3 LIST (refresh from remote)", S3ChunkStore.get),
    (2, "S3 PutObject of pending chunks", S3ChunkStore.put),
)
"""(depth, label, function): cumulative time of each, nested as the calls are."""


@frozen
class Share:
    depth: int
    label: str
    seconds: float
    share: float


@frozen
class Hotspots:
    layout: str
    chunk_size: int
    batch_size: int
    size: int
    stages: tuple[Share, ...]
    leaves: tuple[Share, ...]
    """The functions with the most time of their own, C functions included."""


def run(
    world: World, layout: str, size: int, chunk_size: int, batch_size: int, leaves: int = 10
) -> Hotspots:
    container = world.container()
    specs = [
        FileSpec(world.endpoint("hotspots", chunk_size), file_size, chunk_size)
        for file_size in file_sizes(layout, size, chunk_size, batch_size)
    ]
    events = list(batches((r for spec in specs for r in records(spec, world.sequence)), batch_size))
    profile = cProfile.Profile()
    profile.runcall(run_handler, container, events)
    for spec in specs:
        world.check_upload(spec, spec.sha256())
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    table = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # typeshed omits .stats
    whole = _cumulative(table, handle) or 1e-9
    stages = tuple(
        Share(depth, label, seconds, seconds / whole)
        for depth, label, function in STAGES
        if (seconds := _cumulative(table, function))
    )
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:leaves]
    return Hotspots(
        layout=layout,
        chunk_size=chunk_size,
        batch_size=batch_size,
        size=sum(spec.size for spec in specs),
        stages=stages,
        leaves=tuple(Share(0, _name(key), values[2], values[2] / whole) for key, values in own),
    )


def _cumulative(
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]],
    function: Callable[..., Any],
) -> float:
    if not isinstance(function, FunctionType):
        raise TypeError(f"{function!r} is not a Python function")
    code = function.__code__
    values = table.get((code.co_filename, code.co_firstlineno, code.co_name))
    return values[3] if values is not None else 0.0


def _name(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":
        return function
    return f"{function} ({'/'.join(filename.split('/')[-2:])}:{line})"
