"""Each benchmark runs at tiny size and yields well-formed results (times are never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks import bronze_ingest, quality_rules
from benchmarks.harness import record


def test_bronze_ingest_tiny(spark: SparkSession, tmp_path: Path) -> None:
    result = bronze_ingest.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == ["5,419 rows"]
    row = result["rows"][0]
    assert set(row) == {"case", "suite_s", "deltalake_s", "suite/deltalake"}
    assert all(isinstance(row[column], float) and row[column] > 0 for column in result["columns"])

    path = record("bronze_ingest", "python -m benchmarks bronze_ingest --size tiny", result, tmp_path)
    written = json.loads(path.read_text())
    assert written["machine"]["spark"] == spark.version
    assert written["rows"] == result["rows"]


def test_quality_rules_tiny(spark: SparkSession) -> None:
    result = quality_rules.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == [
        "1 rules, one pass", "10 rules, one pass", "50 rules, one pass", "50 rules, one scan per rule"
    ]  # fmt: skip
    assert result["rows"][0]["ratio_to_1_rule"] == 1.0
    assert all(row["seconds"] > 0 for row in result["rows"])
