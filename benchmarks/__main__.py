"""``python -m benchmarks [NAME ...] [--size tiny|full]``: run benchmarks and record their results."""

from __future__ import annotations

import argparse
import importlib
import json
import time

from benchmarks.harness import RESULTS, record_run

#: What ``make bench`` runs: the performance claims, in this order.
BENCHMARKS = [
    "bronze_ingest", "quality_rules", "quality_peers", "scoring_throughput", "speed_layer", "scd2_merge",
    "batch_concurrency", "batch_scaling",
]  # fmt: skip
#: Run only when named: ``iforest_fidelity`` checks the model's accuracy against the paper, not a speed.
OPTIONAL = ["iforest_fidelity"]


def main() -> None:
    known = BENCHMARKS + OPTIONAL
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"of {', '.join(known)} (default: all but {', '.join(OPTIONAL)})"
    )
    parser.add_argument("--size", default="full", choices=["tiny", "full"])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each case, after a warm-up")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(known))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; known: {', '.join(known)}")
    names = args.names or BENCHMARKS
    seconds: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        result = module.run(args.size, args.repeat, RESULTS)
        seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name} ({seconds[name]:.0f}s): {json.dumps(result['rows'])}")
    record_run(args.size, args.repeat, seconds)
    minutes = sum(seconds.values()) / 60
    print(f"{len(names)} benchmarks in {minutes:.1f} min; written to benchmarks/results/ and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
