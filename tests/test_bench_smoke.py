"""`make bench` on tiny inputs, once, so that its code cannot rot.

Nothing here is timed and no goal is asserted: only that every figure is produced and sane.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bench import log_volume
from bench.delay_proxy import DelayProxy
from bench.log_volume import LEVELS
from bench.memory import function_allocator_environment
from bench.realistic import (
    Piece,
    Shape,
    interleaved,
    invocations,
    item_size,
)
from bench.report import render, to_json, write_json
from bench.suite import Plan, run
from bench.workload import KIB, FileSpec
from entrypoints.events import INVOCATION_PAYLOAD_LIMIT
from tests.tools.receiver import LocalReceiver

TINY = Plan(
    "tiny",
    realistic=Shape(
        file_size=48 * KIB,
        chunk_size=16 * KIB,
        large_file_size=104 * 16 * KIB,  # over 100 partitions: segments
        stream_file_size=32 * KIB,
        stream_files=6,
        small_files=3,
        small_invocations=2,
    ),
    throughput_bytes=96 * KIB,
    chunk_sizes=(16 * KIB,),
    batch_size=2,
    repeats=1,
    cost_chunks=(3, 6),
    memory_sizes=(64 * KIB, 128 * KIB),
    memory_chunk_size=16 * KIB,
    latency_bytes=64 * KIB,
    latency_chunk_size=16 * KIB,
)


@pytest.fixture
def aws_settings_of_no_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No profile or config file of this machine may steer boto3 away from the emulator."""
    for name in ("AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "SSM_PARAMETER_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-config"))


@pytest.fixture
def service_logger() -> Iterator[None]:
    """The benchmark's containers set the service logger's level: give the next test its own."""
    logger = logging.getLogger("sfb")
    level, handlers, propagate = logger.level, list(logger.handlers), logger.propagate
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers
    logger.propagate = propagate


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@pytest.mark.usefixtures("aws_settings_of_no_one", "service_logger")
def test_every_section_of_the_benchmark_produces_sane_figures(tmp_path: Path) -> None:
    results = run(TINY, say=lambda _: None)

    realistic = results.realistic
    assert realistic is not None
    assert [row.backend for row in realistic.layouts] == [
        "local",
        "local",
        "dynamodb",
        "redis",
        "dynamodb",
        "dynamodb",
    ]
    local, stream, *shared, large, session = realistic.layouts
    issues_layouts = [local, *shared]
    for layout in (*issues_layouts, session):
        assert layout.chunks == 9
        assert len(layout.completing_seconds) == len(layout.floor_seconds) == 3
    for layout in realistic.layouts:
        assert layout.requests_per_chunk > 0 or layout.backend == "redis"
        assert _positive(layout.dollars_per_gib)
        assert _positive(layout.over_floor)
        # The durable floor is a floor: no layout pays less.
        assert layout.durable_invocations <= layout.invocations
        assert 0 < layout.durable_floor_per_gib <= layout.dollars_per_gib
        if layout.backend != "redis":
            assert layout.requests.get("s3.PutObject", 0) >= layout.durable_invocations
    dynamodb, redis = shared
    assert (stream.files, stream.chunks, len(stream.completing_seconds)) == (6, 12, 6)
    assert (large.files, large.chunks, len(large.completing_seconds)) == (1, 104, 1)
    # One file over the shards: every invocation but the one with its last chunk leaves it open.
    assert large.durable_invocations == large.invocations - 1 > 0
    # In segments, the file's chunks of each invocation are counted by one reservation and
    # one commit a segment: fewer write units than the two a chunk each alone would take.
    assert large.write_units < large.chunks
    # What the items left in the table cost the expiry: it reads the index of open files,
    # and every file is closed; tombstones and objects' items are out of it.
    assert dynamodb.expiry_read_units == local.expiry_read_units == redis.expiry_read_units == 0
    assert local.write_units == 0
    assert dynamodb.write_units >= dynamodb.requests["dynamodb.UpdateItem"]
    assert redis.write_units == 0
    assert not any(kind.startswith("dynamodb.") for kind in redis.requests)
    assert redis.requests_per_chunk < dynamodb.requests_per_chunk  # chunks stay in Redis
    assert [small.backend for small in realistic.small_files] == ["local", "dynamodb", "redis"]
    for small in realistic.small_files:
        assert small.invocations == 2  # after the container's first, timed apart
        assert _positive(small.files_per_second)
        assert _positive(small.first_seconds)

    assert {row.layout for row in results.throughput} == {"across batches", "inside a batch"}
    for row in results.throughput:
        assert row.batches_per_file == (3 if row.layout == "across batches" else 1)
        for figure in (row.handler_mb_s, row.stdlib_mb_s, row.fast_mb_s, row.handler_vs_fast):
            assert _positive(figure)

    assert {(cost.backend, cost.layout) for cost in results.cost} == {
        (backend, layout)
        for backend in ("local", "dynamodb")
        for layout in ("inside one batch", "across 3 batches")
    }
    for cost in results.cost:
        assert cost.ingest.exact
        assert cost.assembly.exact
        assert cost.total.at(6) == sum(cost.operations.values())
        if cost.backend == "dynamodb" and cost.layout != "inside one batch":
            # Both phases are seen. Ingest costs each batch the object, its item and one
            # add for the file's chunks, whatever their number; completing costs requests.
            assert (cost.ingest.per_chunk, cost.ingest.per_file) == (0, 9)
            assert cost.assembly.per_file > 0
        elif cost.backend == "dynamodb":
            # A file whole in its batch: one lookup and one tombstone, nothing a chunk.
            assert (cost.total.per_chunk, cost.total.per_file) == (0, 2)

    assert [memory.size for memory in results.memory] == list(TINY.memory_sizes)
    for memory in results.memory:
        for probe in (memory.ours, memory.naive):
            assert 0 < probe.setup_kib <= probe.peak_kib
            assert probe.seconds >= 0

    latency = results.latency
    assert latency is not None
    assert _positive(latency.to_last_byte_seconds)
    assert latency.to_last_byte_seconds <= latency.to_return_seconds
    assert _positive(latency.put_floor_seconds)

    assert results.hotspots
    for spots in results.hotspots:
        assert spots.stages[0].label == "handler, whole batch"
        assert spots.stages[0].share == pytest.approx(1.0)
        assert all(0 <= stage.share <= 1.0 + 1e-9 for stage in spots.stages)
        assert spots.leaves

    target = tmp_path / "results.json"
    write_json(results, target)
    document = json.loads(target.read_text())
    assert document == json.loads(json.dumps(to_json(results)))
    assert document["machine"]["cpu_count"] >= 1
    assert document["machine"]["python"]
    assert document["goals"]
    assert all(isinstance(goal["passed"], bool) for goal in document["goals"])

    table = render(results)
    for heading in (
        "A. What a user pays",
        "B. Many small files",
        "1. Throughput",
        "2. AWS requests",
        "3. Peak RSS",
        "4. Latency",
        "Goals",
    ):
        assert heading in table


def _spec(size: int, chunk_size: int = 700 * KIB) -> FileSpec:
    return FileSpec("http://127.0.0.1:9/file?X-Amz-Signature=x", size, chunk_size)


@pytest.mark.usefixtures("aws_settings_of_no_one", "service_logger")
def test_the_log_probe_counts_a_line_a_file_uploaded_at_info_and_only_metrics_at_warning() -> None:
    assert TINY.realistic is not None
    rows = log_volume.main(say=lambda _: None, shape=TINY.realistic)

    by = {(row.what.split(":")[0], row.level): row for row in rows}
    assert set(by) == {(w, level) for w in ("local", "small files, local") for level in LEVELS}
    for what in ("local", "small files, local"):
        info, warning = by[what, "INFO"], by[what, "WARNING"]
        assert info.bytes["file uploaded"] > 0
        assert info.bytes["metrics (EMF)"] > 0
        assert set(warning.bytes) == {"metrics (EMF)"}
        assert _positive(warning.dollars_per_unit)
        assert info.per_unit > warning.per_unit
    files = by["small files, local", "INFO"]
    assert files.units == 3 * 3  # the first invocation and the two after it, 3 files each
    assert 150 < files.bytes["file uploaded"] / files.units < 400  # one line a file


def test_the_memory_probes_run_with_the_functions_allocator_settings() -> None:
    assert function_allocator_environment() == {"MALLOC_MMAP_THRESHOLD_": "4194304"}


def test_invocations_are_cut_at_lambdas_6_mb_so_700_kib_chunks_go_four_at_a_time() -> None:
    specs = [_spec(20 * 700 * KIB)]
    cut = list(invocations(specs, interleaved(specs), shard=0))

    assert [len(invocation.pieces) for invocation in cut] == [4] * 5
    assert all(invocation.payload_bytes <= INVOCATION_PAYLOAD_LIMIT for invocation in cut)
    assert all(len(json.dumps(invocation.event)) == invocation.payload_bytes for invocation in cut)
    assert cut[1].event["Records"][0]["eventID"].startswith("shardId-000000000000:")


def test_invocations_also_stop_at_the_batch_size() -> None:
    specs = [_spec(20 * KIB, 20 * KIB) for _ in range(7)]
    pieces = [Piece(file, 0) for file in range(7)]

    cut = list(invocations(specs, pieces, shard=3, max_records=3))

    assert [len(invocation.pieces) for invocation in cut] == [3, 3, 1]
    assert cut[0].event["Records"][0]["eventID"].startswith("shardId-000000000003:")


def test_producers_interleave_record_by_record_each_file_in_partition_order() -> None:
    specs = [_spec(2 * KIB, KIB), _spec(3 * KIB, KIB)]

    assert interleaved(specs) == [Piece(0, 0), Piece(1, 0), Piece(0, 1), Piece(1, 1), Piece(1, 2)]


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"file_id": {"S": "abc"}}, 7 + 3),
        ({"n": {"N": "12345"}}, 1 + 3 + 1),  # 5 significant digits: 3 bytes, + 1
        ({"n": {"N": "1000"}}, 1 + 1 + 1),  # trailing zeros are trimmed
        ({"p0": {"B": bytes(16)}}, 2 + 16),
        ({"ok": {"BOOL": True}}, 2 + 1),
        ({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}, 1 + 3 + (1 + 2) + (1 + 2)),
    ],
)
def test_item_size_is_dynamodbs_name_plus_value_bytes(item: dict[str, Any], size: int) -> None:
    assert item_size(item) == size


def test_the_delay_proxy_forwards_a_body_without_waiting_for_acks() -> None:
    """Headers and body leave the proxy in separate writes: with Nagle's algorithm on, every
    request with a body waited a delayed ACK (40 ms) on top of the delay it stands for."""
    with LocalReceiver() as upstream, DelayProxy(upstream.url("").rstrip("/"), 0.0) as proxy:
        towards_upstream = proxy.connect()
        try:
            assert towards_upstream.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            towards_upstream.close()
        with requests.Session() as session:
            session.trust_env = False
            answer = session.put(f"{proxy.url}/through", data=b"a body", timeout=10)

    assert answer.status_code == 200
    assert [put.body for put in upstream.received] == [b"a body"]
