"""``python -m benchmarks [NAME ...] [--size tiny|full]``: run benchmarks and record their results."""

from __future__ import annotations

import argparse
import importlib
import json

from benchmarks.harness import RESULTS

BENCHMARKS = [
    "bronze_ingest", "quality_rules", "iforest_fidelity", "scoring_throughput", "speed_layer", "scd2_merge",
    "batch_concurrency", "batch_scaling",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--size", default="full", choices=["tiny", "full"])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each case, after a warm-up")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"benchmarks.{name}")
        result = module.run(args.size, args.repeat, RESULTS)
        print(f"{name}: {json.dumps(result['rows'])}")
    print("written to benchmarks/results/ and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
