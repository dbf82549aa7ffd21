"""``python -m benchmarks [NAME ...] [--size tiny|full]``: run benchmarks and record their results."""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import RESULTS, record_run

#: What ``make bench`` runs: the performance claims, in this order.
BENCHMARKS = [
    "bronze_ingest",
    "quality_rules",
    "quality_peers",
    "scoring_throughput",
    "speed_layer",
    "scd2_merge",
    "batch_concurrency",
    "batch_scaling",
]
#: Run only when named: ``iforest_fidelity`` checks the model's accuracy against the paper, not a speed.
OPTIONAL = ["iforest_fidelity"]
#: Run in one Spark session when more than one of them is run: each after the first is warmed up by those
#: before it (all run the batch layer on the same configuration), instead of by a warm-up of its own.
SHARED_SESSION = ["batch_concurrency", "batch_scaling"]


def _session() -> Any:
    from etl_lib.config import load_config
    from etl_lib.runtime.session import build_session

    config = load_config(Path(__file__).resolve().parents[1] / "conf" / "local.yaml", ["spark.log_level=ERROR"])
    return build_session(config.spark)


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
    names = [name for name in known if name in args.names] if args.names else BENCHMARKS  # in this order
    seconds: dict[str, float] = {}
    sharing = sum(name in SHARED_SESSION for name in names) > 1
    spark, shared = None, []
    try:
        for name in names:
            started = time.perf_counter()
            module = importlib.import_module(f"benchmarks.{name}")
            options: dict[str, Any] = {}
            if sharing and name in SHARED_SESSION:
                spark = spark or _session()  # started in the first one's time
                options = {"spark": spark, **({"warmed_by": tuple(shared)} if shared else {})}
                shared.append(name)
            result = module.run(args.size, args.repeat, RESULTS, **options)
            seconds[name] = round(time.perf_counter() - started, 1)
            print(f"{name} ({seconds[name]:.0f}s): {json.dumps(result['rows'])}")
    finally:
        if spark is not None:
            spark.stop()
    record_run(args.size, args.repeat, seconds)
    minutes = sum(seconds.values()) / 60
    print(f"{len(names)} benchmarks in {minutes:.1f} min; written to benchmarks/results/ and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
