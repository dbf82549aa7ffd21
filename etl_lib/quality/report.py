"""``etl-suite quality report [--run-id R]``: a readable summary of ``audit/quality_results``, without Spark."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def load_results(root: str) -> list[dict[str, Any]]:
    """Every quality result of the lakehouse at ``root``."""
    from etl_lib.io.portable import is_table, table_rows

    path = f"{root.rstrip('/')}/audit/quality_results"
    return table_rows(path) if is_table(path) else []


def report(results: list[dict[str, Any]], run_id: str | None = None) -> str:
    """The results of one run (the latest by default), per table then per rule; micro-batches add up."""
    if not results:
        return "no quality results yet"
    if run_id is None:
        run_id = max(results, key=lambda r: r["evaluated_at"])["run_id"]
    mine = [r for r in results if r["run_id"] == run_id]
    if not mine:
        return f"no quality results for run {run_id}"
    lines = [f"Quality of run {run_id} ({mine[0]['job']}):"]
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in mine:
        by_table[row["table"]].append(row)
    for table, rows in sorted(by_table.items()):
        batches = {r["batch_id"] for r in rows}
        scores = [r["score"] for r in rows]
        held = sum(1 for r in rows if r["held"]) // max(1, len({r["rule"] for r in rows}))
        threshold = rows[0]["score_threshold"]
        per_rule: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            per_rule[row["rule"]].append(row)
        passed = sum(all(r["passed"] for r in group) for group in per_rule.values())
        total_rows = sum(r["rows"] for r in per_rule[next(iter(per_rule))])
        lines.append(
            f"  {table}: score {min(scores):.2f} (threshold {threshold:.2f}), {passed}/{len(per_rule)} rules passed, "
            f"{total_rows:,} rows in {len(batches)} batch(es)" + (f", {held} held back" if held else "")
        )
        for rule, group in sorted(per_rule.items()):
            first = group[0]
            failing = sum(r["failing_rows"] for r in group)
            verdict = "passed" if all(r["passed"] for r in group) else "FAILED"
            samples = sorted({k for r in group for k in (r["sample_keys"] or [])})[:3]
            sample = f"  e.g. {', '.join(samples)}" if samples and failing else ""
            kind = f"{first['rule_type']:<14} {first['action']:<10}"
            lines.append(f"    {verdict:<6} {rule:<32} {kind} {failing:>10,} failing{sample}")
    return "\n".join(lines)
