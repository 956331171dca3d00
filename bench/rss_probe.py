"""One file through one assembler in a fresh process, then its peak RSS as a JSON line.

``python -m bench.rss_probe {ours,naive} SIZE --endpoint URL ...`` is what bench.memory
starts: ``ours`` runs the handler (local backend) batch by batch, ``naive`` decodes every
record, joins the chunks in memory and PUTs the result. Events are made lazily, one batch
at a time, so the generator never holds the file. The AWS settings come from the
environment, pointing at the parent's emulator. The peak is VmHWM, not ru_maxrss: see
peak_rss_kib.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.workload import MIB, FileSpec, Sequencer, batches, records

RESULT = "SFB-BENCH-RSS "
"""Marks the line that holds the result, apart from anything else on stdout."""


def peak_rss_kib() -> int:
    """This process image's peak RSS in KiB: VmHWM where Linux has it, else ru_maxrss.

    Linux carries ru_maxrss across fork and exec: a child's starts at its parent's peak (the
    parent holds the emulator and the receiver), so it cannot tell a small child from a big
    parent. VmHWM belongs to the process image that exec made.
    """
    status = Path("/proc/self/status")
    if status.exists():
        found = re.search(r"^VmHWM:\s+(\d+) kB$", status.read_text(), re.MULTILINE)
        if found is not None:
            return int(found.group(1))
    return ru_maxrss_kib()


def ru_maxrss_kib() -> int:
    """getrusage's peak, in KiB on Linux; inherited from the parent, see peak_rss_kib."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def ours(spec: FileSpec, batch_size: int, bucket: str, tmp_dir: str) -> tuple[int, float]:
    from entrypoints.container import build_container
    from entrypoints.lambda_handler import handle

    container = build_container(
        {
            "S3_BUCKET": bucket,
            "TMP_DIR": tmp_dir,
            "UPLOAD_ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
        }
    )
    container.process_batch()  # the cold start: everything the first batch would build
    setup = peak_rss_kib()
    started = time.perf_counter()
    for event in batches(records(spec, Sequencer()), batch_size):
        response = handle(container, event, None)
        if response["batchItemFailures"]:
            raise SystemExit(f"the handler asked for redelivery: {response}")
    return setup, time.perf_counter() - started


def naive(spec: FileSpec, batch_size: int) -> tuple[int, float]:
    import orjson
    import pybase64

    from bench.baselines import plain_session

    session = plain_session()
    setup = peak_rss_kib()
    started = time.perf_counter()
    pieces: list[bytes] = []
    for event in batches(records(spec, Sequencer()), batch_size):
        for record in event["Records"]:
            document = orjson.loads(pybase64.b64decode(record["kinesis"]["data"], validate=True))
            pieces.append(pybase64.b64decode(document["content"], validate=True))
    response = session.put(spec.endpoint, data=b"".join(pieces), timeout=(5, 300))
    with response:
        response.raise_for_status()
    return setup, time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rss_probe")
    parser.add_argument("assembler", choices=("ours", "naive"))
    parser.add_argument("size", type=int, help="file bytes")
    parser.add_argument("--endpoint", required=True, help="where the file is PUT")
    parser.add_argument("--chunk-size", type=int, default=MIB)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--bucket", default="sfb-bench")
    parser.add_argument("--tmp-dir", default=".")
    args = parser.parse_args(argv)
    spec = FileSpec(args.endpoint, args.size, args.chunk_size)
    if args.assembler == "ours":
        setup, seconds = ours(spec, args.batch_size, args.bucket, args.tmp_dir)
    else:
        setup, seconds = naive(spec, args.batch_size)
    result = {
        "setup_kib": setup,
        "peak_kib": peak_rss_kib(),
        "ru_maxrss_kib": ru_maxrss_kib(),
        "seconds": seconds,
    }
    sys.stdout.write(RESULT + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
