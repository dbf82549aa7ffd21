"""Each benchmark runs at tiny size and yields well-formed results (times are never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import SparkSession

from benchmarks import bronze_ingest, iforest_fidelity, quality_rules, scoring_throughput
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


def test_iforest_fidelity_tiny(spark: SparkSession) -> None:
    result = iforest_fidelity.run("tiny", spark=spark)
    assert [row["case"].split(" ")[0] for row in result["rows"]] == ["4_breastw", "29_Pima"]
    for row in result["rows"]:
        assert 0.5 < row["suite_auc"] <= 1.0
        assert abs(row["suite_auc"] - row["paper_auc"]) < 0.05


def test_scoring_throughput_tiny(spark: SparkSession) -> None:
    result = scoring_throughput.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == ["single-process scikit-learn", "pandas UDF in Spark"]
    assert result["rows"][0]["speedup"] == 1.0
    assert all(row["rows_per_second"] > 0 for row in result["rows"])
