"""Memory: peak RSS of a fresh process assembling one file, ours beside a naive join.

Each file goes through its own child process (bench.rss_probe) so that no figure inherits
another's peak; the receiver and the AWS emulator stay in this process, out of the count.
The child runs with the allocator settings the template gives the Function (``MALLOC_*``):
glibc reads them when a process starts, so this process's own would not tell.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from attrs import frozen
from cfnlint.decode import decode  # type: ignore[import-untyped]

from bench.rss_probe import RESULT
from bench.workload import FileSpec
from bench.world import BUCKET, BenchError, World

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
CHILD_TIMEOUT = 600.0


@functools.cache
def function_allocator_environment() -> dict[str, str]:
    """The Function's ``MALLOC_*`` variables, as template.yaml sets them (read once)."""
    loaded, problems = decode(str(TEMPLATE))
    if problems:
        raise BenchError(f"template.yaml does not parse: {problems}")
    variables = loaded["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    return {name: str(value) for name, value in variables.items() if name.startswith("MALLOC_")}


@frozen
class Probe:
    setup_kib: int
    """Peak RSS once imports and the container are made, before the first record."""
    peak_kib: int
    """Peak RSS of the child's own process image (VmHWM)."""
    ru_maxrss_kib: int
    """getrusage's figure, which on Linux starts at the parent's peak: kept for comparison."""
    seconds: float


@frozen
class MemoryRow:
    size: int
    chunk_size: int
    batch_size: int
    ours: Probe
    naive: Probe

    @property
    def ours_vs_naive(self) -> float:
        return self.ours.peak_kib / self.naive.peak_kib


def run(world: World, sizes: Sequence[int], chunk_size: int, batch_size: int) -> list[MemoryRow]:
    return [measure(world, size, chunk_size, batch_size) for size in sizes]


def measure(world: World, size: int, chunk_size: int, batch_size: int) -> MemoryRow:
    probes = {}
    digest = FileSpec("http://127.0.0.1/", size, chunk_size).sha256()
    for assembler in ("ours", "naive"):
        spec = FileSpec(world.endpoint("memory", assembler, size), size, chunk_size)
        probes[assembler] = probe(world, assembler, spec, batch_size)
        world.check_upload(spec, digest)
    return MemoryRow(size, chunk_size, batch_size, probes["ours"], probes["naive"])


def probe(world: World, assembler: str, spec: FileSpec, batch_size: int) -> Probe:
    tmp_dir = world.scratch(f"rss-{assembler}")
    command = [
        sys.executable,
        "-m",
        "bench.rss_probe",
        assembler,
        str(spec.size),
        "--endpoint",
        spec.endpoint,
        "--chunk-size",
        str(spec.chunk_size),
        "--batch-size",
        str(batch_size),
        "--bucket",
        BUCKET,
        "--tmp-dir",
        str(tmp_dir),
    ]
    # The child inherits AWS_ENDPOINT_URL and the credentials local_aws() set here.
    environment = {
        **os.environ,
        **function_allocator_environment(),
        "PYTHONPATH": os.pathsep.join([str(ROOT), *_pythonpath()]),
    }
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module, no shell
        command,
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            out, err = child.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise BenchError(
                f"{assembler} took over {CHILD_TIMEOUT:.0f} s for {spec.size} bytes"
            ) from None
    lines = [line for line in out.splitlines() if line.startswith(RESULT)]
    if child.returncode != 0 or not lines:
        raise BenchError(f"{assembler} probe failed ({child.returncode}): {err.strip()[-2000:]}")
    result = json.loads(lines[-1][len(RESULT) :])
    return Probe(
        int(result["setup_kib"]),
        int(result["peak_kib"]),
        int(result["ru_maxrss_kib"]),
        float(result["seconds"]),
    )


def _pythonpath() -> list[str]:
    existing = os.environ.get("PYTHONPATH", "")
    return [part for part in existing.split(os.pathsep) if part]
