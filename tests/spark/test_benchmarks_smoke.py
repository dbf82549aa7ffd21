"""Each benchmark runs at tiny size and yields well-formed results (times are never asserted)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from benchmarks import (
    batch_concurrency,
    batch_scaling,
    bronze_ingest,
    iforest_fidelity,
    quality_rules,
    scd2_merge,
    scoring_throughput,
)
from benchmarks.harness import record, record_run, write_summary
from etl_lib.runtime.stack import active_line

# Benchmarks are measured on the primary line; their smoke runs need not repeat on the other.
pytestmark = pytest.mark.primary_line


def test_bronze_ingest_tiny(spark: SparkSession, tmp_path: Path) -> None:
    result = bronze_ingest.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == ["5,419 rows"]
    row = result["rows"][0]
    assert set(row) == {"case", "suite_s", "suite_spread", "deltalake_s", "deltalake_spread", "suite/deltalake"}
    assert all(isinstance(row[column], float) and row[column] >= 0 for column in result["columns"])
    # The ratio is of the two times reported (each rounded to the millisecond); each way's rows are checked inside
    # (the suite's job and delta-rs each wrote the 5,419 lines).
    assert row["suite/deltalake"] == pytest.approx(row["suite_s"] / row["deltalake_s"], rel=0.1, abs=0.01)

    path = record("bronze_ingest", "python -m benchmarks bronze_ingest --size tiny", result, tmp_path)
    written = json.loads(path.read_text())
    assert written["machine"]["spark"] == spark.version
    assert written["rows"] == result["rows"]


def test_quality_rules_tiny(spark: SparkSession) -> None:
    result = quality_rules.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == [
        "scan only (no rule)",
        "1 rules, one pass",
        "10 rules, one pass",
        "50 rules, one pass",
        "50 rules, one scan per rule",
    ]
    assert result["rows"][1]["ratio_to_1_rule"] == 1.0
    one_rule = result["rows"][1]["seconds"]
    for row in result["rows"]:
        assert row["ratio_to_1_rule"] == pytest.approx(row["seconds"] / one_rule, rel=0.1, abs=0.01), row["case"]
    [goal] = result["targets"]
    assert goal["target"] == "t(50)/t(1) <= 1.5"
    assert goal["met"] == (goal["measured"] <= 1.5)
    assert goal["met"] or "ms per rule" in goal["cause"]  # a missed target says why


def test_iforest_fidelity_tiny(spark: SparkSession) -> None:
    result = iforest_fidelity.run("tiny", spark=spark)
    assert [row["case"].split(" ")[0] for row in result["rows"]] == ["4_breastw", "29_Pima"]
    for row in result["rows"]:
        assert 0.5 < row["suite_auc"] <= 1.0
        assert abs(row["suite_auc"] - row["paper_auc"]) < 0.05


def test_scoring_throughput_tiny(spark: SparkSession) -> None:
    result = scoring_throughput.run("tiny", repeat=1, spark=spark)
    assert [row["case"] for row in result["rows"]] == [
        "single-process scikit-learn",
        "pandas UDF in Spark (the suite)",
        "one call per row (the seed's way), 200 rows",
    ]
    assert result["rows"][0]["speedup"] == 1.0
    # Rates are of the rows each way scored, in the time reported; the UDF's scores are checked inside against
    # scikit-learn's in one process (their sums agree), so both ways did the same work.
    local, udf, seed = result["rows"]
    runs = result["runs"]
    assert result["scored_rows"] == 20_000
    assert local["rows_per_second"] * runs["single_process"]["median"] == pytest.approx(20_000, rel=0.01)
    assert udf["rows_per_second"] * runs["udf"]["median"] == pytest.approx(20_000, rel=0.01)
    assert seed["rows_per_second"] * runs["row_at_a_time"]["median"] == pytest.approx(200, rel=0.01)
    sums = result["score_sums"]
    assert sums["udf"] == pytest.approx(sums["one_process"], rel=1e-9)
    assert [goal["target"] for goal in result["targets"]] == [">= 1.5x", "faster"]
    assert result["targets"][0]["met"] or "without the model" in result["targets"][0]["cause"]
    floor = result["runs"]["spark_without_model"]
    assert floor["median"] == pytest.approx(statistics.median(floor["runs"]), abs=2e-4)


def test_scd2_merge_tiny(spark: SparkSession, tmp_path: Path) -> None:
    result = scd2_merge.run("tiny", repeat=1, spark=spark, warmup=0)
    cases = {row["case"]: row for row in result["rows"]}
    assert list(cases) == ["rewrite the dimension", "MERGE (the suite's way)", "MERGE, deletion vectors on"]
    assert cases["rewrite the dimension"]["speedup_over_rewrite"] == 1.0
    # The three ways leave the same table (checked inside); Delta's own metrics say what each rewrote.
    assert cases["MERGE, deletion vectors on"]["rows_copied"] == 0
    assert cases["rewrite the dimension"]["rows_copied"] == 5_000 - 50
    [goal] = result["targets"]
    assert goal["met"] or "files" in goal["cause"]
    change_set = result["change_set_seconds"]
    assert (len(change_set["runs"]), change_set["median"]) == (1, change_set["runs"][0])

    # The summary puts every target first, with its cause where it is missed.
    results = tmp_path / "results"
    record("scd2_merge", "python -m benchmarks scd2_merge --size tiny", result, results)
    record_run("tiny", 1, {"scd2_merge": 90.0}, results)
    summary = write_summary(results, tmp_path / "RESULTS.md")
    assert "| scd2_merge | SCD2 MERGE of 1% against a rewrite | >= 5x |" in summary
    # The run's own record says how long it took, and is not taken for a benchmark.
    assert f"Last run ({active_line().name} line, tiny size, 1 timed runs per case" in summary
    assert "1.5 minutes in all (scd2_merge 1.5; minutes)" in summary
    assert summary.count("\n## ") == 2  # Targets, scd2_merge


def test_batch_concurrency_tiny(spark: SparkSession) -> None:
    result = batch_concurrency.run("tiny", repeat=1, spark=spark)
    assert "median of 1 after the whole run that prepared it (the warm-up)" in result["summary"]
    serial, parallel = result["rows"]
    assert (serial["case"], parallel["case"]) == ("one table at a time", "two tables at once")
    assert serial["speedup"] == 1.0
    assert parallel["speedup"] == pytest.approx(serial["seconds"] / parallel["seconds"], rel=0.1, abs=0.01)
    # The two ways built the same gold table (checked inside); the ratio reported is the ratio of the medians.
    assert abs(result["targets"][0]["measured"] - serial["seconds"] / parallel["seconds"]) < 0.05


def test_batch_scaling_tiny(spark: SparkSession) -> None:
    # Inside, DuckDB's daily revenue over the same Parquet is checked to agree with the suite's gold table.
    # As `make bench` runs it: after batch_concurrency in the same session, which is its warm-up.
    result = batch_scaling.run("tiny", repeat=1, spark=spark, warmed_by=("batch_concurrency",))
    assert (
        "after batch_concurrency in the same Spark session (the warm-up), runs per size: 1x 1, 4x 1"
        in (result["summary"])
    )
    one, four = result["rows"]
    assert (one["case"], four["case"]) == ("1x", "4x")
    assert four["lines"] == 4 * one["lines"]
    for row in result["rows"]:
        runs = result["runs"]["suite"][int(row["case"].removesuffix("x"))]["runs"]
        assert row["suite_s"] == pytest.approx(statistics.median(runs), abs=0.006)
        assert row["seconds_per_million_lines"] == pytest.approx(row["suite_s"] / row["lines"] * 1e6, rel=0.01)
        assert row["suite/duckdb"] == pytest.approx(row["suite_s"] / row["duckdb_s"], rel=0.1, abs=0.1)
    goal, rerun = result["targets"]
    assert goal["target"] == "<= 4 (linear)"
    assert goal["met"] == (goal["measured"] <= 4)
    # The same date again wrote nothing (checked inside), and its time is the median of its runs.
    assert "then the same date again on the last 1x lakehouse (nothing new), runs: 1" in result["summary"]
    assert rerun["measured"] == pytest.approx(result["runs"]["rerun"]["median"], abs=0.001)
    assert rerun["met"] == (rerun["measured"] <= 3.0)
    assert rerun["met"] or "silver/order_lines" in rerun["cause"]
