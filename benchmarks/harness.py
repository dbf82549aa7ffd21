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


def timed(action: Callable[[int], object], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` calls of ``action``, which gets the attempt number (0, 1, ...)."""
    seconds = []
    for attempt in range(repeat):
        start = time.perf_counter()
        action(attempt)
        seconds.append(time.perf_counter() - start)
    return seconds


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def machine() -> dict[str, Any]:
    """Cores, memory and the versions that matter for the numbers."""
    import pyspark

    from etl_lib.platform.stack import active_line

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


def write_summary() -> None:
    """``RESULTS.md``: one section per benchmark with its command, machine and numbers."""
    lines = ["# Benchmark results", "", "Written by `make bench`; each number is a ratio measured in one run.", ""]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        m = data["machine"]
        lines += [
            f"## {data['name']}",
            "",
            f"- command: `{data['command']}`",
            f"- machine: {m['cores']} cores, {m['memory_gib']} GiB; Python {m['python']}, "
            f"Spark {m['spark']}, Delta {m['delta']}; recorded {data['recorded_at']}",
            f"- {data['summary']}",
            "",
            "| case | " + " | ".join(data["columns"]) + " |",
            "|---|" + "---|" * len(data["columns"]),
        ]
        for row in data["rows"]:
            lines.append(f"| {row['case']} | " + " | ".join(str(row[c]) for c in data["columns"]) + " |")
        lines.append("")
    SUMMARY.write_text("\n".join(lines), encoding="utf-8")
