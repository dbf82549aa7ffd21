"""The quality peers benchmark at tiny size: the suite, Great Expectations and (where the line has it) Deequ.

It runs in a process of its own: Deequ's jars must be on the session from its start, which the tests' shared
session is not. Times are never asserted; what is asserted is that every tool judged the same six rules alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from etl_lib.runtime.stack import active_line

PROJECT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
from benchmarks import quality_peers
result = quality_peers.run("tiny", 1, Path(sys.argv[1]))
print("RESULT " + json.dumps({"rows": result["rows"], "verdicts": result["verdicts"], "targets": result["targets"]}))
"""


def test_the_same_rules_through_each_tool_at_tiny_size(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    [line] = [text for text in completed.stdout.splitlines() if text.startswith("RESULT ")]
    result = json.loads(line.removeprefix("RESULT "))
    line_name = active_line().name
    tools = ["suite", "great_expectations"] + (["deequ"] if active_line().deequ else [])
    assert [row["case"] for row in result["rows"]] == tools
    suite_seconds = result["rows"][0]["seconds"]
    for row in result["rows"]:
        assert row["time_over_suite"] == pytest.approx(row["seconds"] / suite_seconds, rel=0.1, abs=0.01), row["case"]
    # The first 5,000 lines hold lines without a customer, invoices of several lines, postage codes and
    # countries outside the list; no quantity out of range, and a row count within bounds.
    expected = {
        "customer_present": False,
        "quantity_range": True,
        "invoice_unique": False,
        "stock_code_pattern": False,
        "known_country": False,
        "row_count": True,
    }
    assert result["verdicts"] == dict.fromkeys(tools, expected)
    [goal] = result["targets"]
    if "deequ" in tools:
        assert goal["met"] == (goal["measured"] <= 1.0)
        assert goal["met"] or "Deequ" in goal["cause"]
    else:
        assert not goal["met"]
        assert f"not measured on the {line_name} line" in goal["cause"]
    written = json.loads((tmp_path / f"quality_peers_{line_name}.json").read_text())
    assert written["rows"] == result["rows"]
