"""``python -m bench``: run the benchmark, print the table, write bench/results.json."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from bench.report import goals, render, write_json
from bench.suite import FULL, QUICK, Plan, run

RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument(
        "--only",
        action="append",
        choices=FULL.sections,
        help="run only this section (repeatable)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is not reached")
    args = parser.parse_args(argv)
    plan: Plan = QUICK if args.quick else FULL
    if args.only:
        plan = attrs.evolve(plan, sections=tuple(args.only))

    results = run(plan, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(render(results))
    write_json(results, args.output)
    print(f"\nwritten: {args.output}")
    return 1 if args.strict and not all(goal.passed for goal in goals(results)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
