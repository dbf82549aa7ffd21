"""Timing, machine description and result files shared by the benchmarks.

Machines here are shared and noisy, so every benchmark reports a ratio against a baseline measured in
the same run; absolute seconds are recorded but are not the claim.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = Path(__file__).resolve().parent / "RESULTS.md"
#: The last ``python -m benchmarks`` run: what it ran and how long each benchmark took (not a benchmark).
RUN = "run.meta.json"


def every_nth_day(table: Any, n: int) -> Any:
    """The lines of the extract (a pyarrow table) invoiced on every ``n``-th day.

    Whole days, so that each day's and country's revenue is what the whole extract says: every ``n``-th
    line would leave some days with only returns, which the gold quality rules rightly hold back.
    """
    import numpy as np
    import pyarrow as pa

    if n <= 1:
        return table
    days = table["InvoiceDate"].to_numpy().astype("datetime64[D]").astype(np.int64)
    return table.filter(pa.array(days % n == 0))


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def measure(
    action: Callable[[int], object],
    repeat: int,
    warmup: int = 1,
    prepare: Callable[[int], object] | None = None,
) -> dict[str, Any]:
    """Warm up ``warmup`` times, then time ``repeat`` runs: median, spread and every run, in seconds.

    ``action`` gets the attempt number; warm-up attempts are negative (-warmup .. -1). ``prepare``, if
    given, runs before every attempt and is not timed. The spread is (max - min) / median, so a reader
    sees how far one number can be trusted on a noisy machine.
    """

    def timed(attempt: int) -> float:
        if prepare is not None:
            prepare(attempt)
        started = time.perf_counter()
        action(attempt)
        return time.perf_counter() - started

    return in_turns({"only": timed}, repeat, warmup)["only"]


def in_turns(
    actions: dict[str, Callable[[int], float | None]], repeat: int, warmup: int = 1
) -> dict[str, dict[str, Any]]:
    """Time several ways of doing the same work in turns: each attempt runs every way once.

    Run side by side, a busy neighbour or a machine slowing down slows every way alike, so their ratio
    holds. The order is reversed on every other attempt, so that no way always runs just after the same
    one (and inherits its caches, or its garbage). ``actions`` are called with the attempt number (warm-ups
    negative, as :func:`measure`); one may return the seconds of the part it measures, leaving out its own
    setup and checks, else its whole call is timed. Returns each way's :func:`summarize` of its timed runs.
    """
    ways = list(actions)
    runs: dict[str, list[float]] = {way: [] for way in ways}
    for attempt in range(-warmup, repeat):
        for way in ways if attempt % 2 == 0 else reversed(ways):
            started = time.perf_counter()
            measured = actions[way](attempt)
            seconds = time.perf_counter() - started if measured is None else measured
            if attempt >= 0:
                runs[way].append(seconds)
    return {way: summarize(seconds) for way, seconds in runs.items()}


def summarize(runs: list[float]) -> dict[str, Any]:
    """Median, spread ((max - min) / median) and every run of some timed runs, in seconds."""
    middle = median(runs)
    return {
        "median": round(middle, 4),
        "spread": round((max(runs) - min(runs)) / middle, 3) if middle else 0.0,
        "runs": [round(value, 4) for value in runs],
    }


def target(claim: str, wanted: str, measured: float, met: bool, cause: str = "") -> dict[str, Any]:
    """One target of a benchmark: what is claimed, the bound, the measured value and, if missed, why.

    ``cause`` is kept only when the target is missed, so a caller may pass the explanation it measured either way.
    """
    return {
        "claim": claim,
        "target": wanted,
        "measured": round(measured, 3),
        "met": bool(met),
        "cause": "" if met else cause,
    }


def machine() -> dict[str, Any]:
    """Cores, memory and the versions that matter for the numbers."""
    import pyspark

    from etl_lib.runtime.stack import active_line

    memory_kb = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text().splitlines()[0]
        memory_kb = int(first.split()[1])
    line = active_line()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "delta": line.delta_spark,
        "line": line.name,
        # Other work on the machine when the benchmark ended (1-minute load average): a busy machine slows
        # both sides of a ratio, not always alike.
        "load_average": round(os.getloadavg()[0], 2),
    }


def record(name: str, command: str, result: dict[str, Any], results_dir: Path = RESULTS) -> Path:
    """Write ``results/<name>.json`` and rebuild ``RESULTS.md`` from every result file."""
    results_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "command": command,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **result,
    }
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if results_dir == RESULTS:
        write_summary()
    return path


def record_run(size: str, repeat: int, seconds: dict[str, float], results_dir: Path = RESULTS) -> Path:
    """Record what one ``python -m benchmarks`` run ran and each benchmark's wall time, then rebuild ``RESULTS.md``."""
    results_dir.mkdir(parents=True, exist_ok=True)
    from etl_lib.runtime.stack import active_line

    payload = {
        "line": active_line().name,
        "size": size,
        "repeat": repeat,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": seconds,
        "total_seconds": round(sum(seconds.values()), 1),
    }
    path = results_dir / RUN
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if results_dir == RESULTS:
        write_summary()
    return path


def write_summary(results_dir: Path = RESULTS, summary: Path = SUMMARY) -> str:
    """``RESULTS.md``: the targets of every benchmark first, then one section per benchmark with its numbers."""
    results = [json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json")) if path.name != RUN]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m benchmarks`). Machines here are shared and noisy: each claim is a",
        "ratio of two things measured side by side in the same run, and every time is the median of the runs",
        "listed with its spread ((max - min) / median).",
        "",
    ]
    run_file = results_dir / RUN
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        each = ", ".join(f"{name} {value / 60:.1f}" for name, value in run["seconds"].items())
        lines += [
            f"Last run ({run['line']} line, {run['size']} size, {run['repeat']} timed runs per case, "
            f"finished {run['finished_at']}): "
            f"{run['total_seconds'] / 60:.1f} minutes in all ({each}; minutes). A benchmark not in it keeps the "
            "result of an earlier run, dated in its section.",
            "",
        ]
    lines += [
        "## Targets",
        "",
        "| benchmark | claim | target | measured | met | cause, where missed |",
        "|---|---|---|---|---|---|",
    ]
    for data in results:
        for goal in data.get("targets", []):
            met = "yes" if goal["met"] else "**no**"
            cells = [data["name"], goal["claim"], goal["target"], goal["measured"], met, goal["cause"]]
            lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    lines.append("")
    for data in results:
        m = data["machine"]
        lines += [
            f"## {data['name']}",
            "",
            f"- command: `{data['command']}`",
            f"- machine: {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
            f"Spark {m['spark']}, Delta {m['delta']}; recorded {data['recorded_at']}"
            + (f", load average {m['load_average']}" if "load_average" in m else ""),
            f"- {data['summary']}",
            "",
            "| case | " + " | ".join(data["columns"]) + " |",
            "|---|" + "---|" * len(data["columns"]),
        ]
        for row in data["rows"]:
            lines.append(f"| {row['case']} | " + " | ".join(str(row[c]) for c in data["columns"]) + " |")
        lines.append("")
    text = "\n".join(lines)
    summary.write_text(text, encoding="utf-8")
    return text
