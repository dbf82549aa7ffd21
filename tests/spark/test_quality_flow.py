"""Quality inside the batch layer: quarantine, replay after a fix, the gate, fail rules, concurrent audit writers."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import JobFailedError
from etl_lib.io import lakehouse
from etl_lib.io.portable import table_rows
from etl_lib.runtime.runner import run_job

HEADER = "invoice,sku,text,qty,when,price,customer,nation\n"
ROWS = (
    "536365,85123A,WHITE HANGING HEART,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
    "536366,22633,HAND WARMER UNION JACK,6,01/12/2010 08:28,1.85,17850,United Kingdom\n"
    "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,01/12/2010 08:34,1.69,13047,United Kingdom\n"
    "536368,22960,JAM MAKING SET WITH JARS,6,01/12/2010 08:34,4.25,13047,United Kingdom\n"
)


def context(run_id: str) -> RunContext:
    return RunContext.new("batch_layer", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: run_id)


def configured(
    base: SuiteConfig, tmp_path: Path, order_line_rules: list[dict[str, Any]], **quality: Any
) -> SuiteConfig:
    landing = tmp_path / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "day1.csv").write_text(HEADER + ROWS)
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(tmp_path / "lake")
    data["run"]["process_date"] = "2010-12-02"
    data["sources"] = {
        "erp_csv": {
            "kind": "files",
            "format": "csv",
            "path": str(landing),
            "table": "erp_csv",
            "entity": "order_lines",
            "columns": {
                "invoice_no": "invoice",
                "stock_code": "sku",
                "description": "text",
                "quantity": "qty",
                "invoice_date": "when",
                "unit_price": "price",
                "customer_id": "customer",
                "country": "nation",
            },
            "formats": {"invoice_date": "dd/MM/yyyy HH:mm"},
        }
    }
    data["quality"]["tables"] = {"silver/order_lines": {"key": ["line_id"], "rules": order_line_rules}}
    data["quality"].update(quality)
    return validate_config(data)


def test_quarantined_rows_keep_their_reasons_and_a_replay_releases_them_after_a_fix(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    strict = [
        {
            "name": "small_orders_only",
            "type": "range",
            "column": "quantity",
            "max": 10,
            "action": "quarantine",
            "threshold": 0.5,
        }
    ]
    config = configured(suite_config, tmp_path, strict)
    run_job("batch_layer", config, spark, context("run-1"))
    lines = lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines"))
    assert sorted(r["invoice_no"] for r in lines.collect()) == ["536365", "536366", "536368"]
    quarantine_path = config.lakehouse.table_path("audit", "quarantine")
    [held] = table_rows(quarantine_path)
    assert held["table"] == "silver/order_lines"
    assert held["run_id"] == "run-1"
    assert [(f["rule"], f["message"], f["run_id"]) for f in held["failures"]] == [
        ("small_orders_only", "quantity is outside [, 10]", "run-1")
    ]
    assert '"invoice_no":"536367"' in held["record"]

    # The rule was too strict; with it relaxed, the replay merges the row and marks it released.
    relaxed = configured(
        suite_config,
        tmp_path,
        [{"name": "small_orders_only", "type": "range", "column": "quantity", "max": 1000, "action": "quarantine"}],
    )
    replay = run_job(
        "quality_replay",
        relaxed.model_copy(update={"run": relaxed.run.model_copy(update={"table": "silver/order_lines"})}),
        spark,
        RunContext.new("quality_replay", new_id=lambda: "replay-1"),
    )
    assert (replay.metrics["examined"], replay.metrics["released"], replay.metrics["still_quarantined"]) == (1, 1, 0)
    assert lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines")).count() == 4
    [released] = table_rows(quarantine_path)
    assert released["released_run_id"] == "replay-1"
    again = run_job(
        "quality_replay",
        relaxed.model_copy(update={"run": relaxed.run.model_copy(update={"table": "silver/order_lines"})}),
        spark,
    )
    assert again.metrics["examined"] == 0


def test_a_batch_below_the_score_threshold_is_held_back_and_the_run_says_so(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    rules = [
        {"name": "no_union_jack", "type": "expression", "expression": "NOT contains(description, 'UNION JACK')"},
        {"name": "customer_known", "type": "completeness", "column": "customer_id"},
    ]
    config = configured(suite_config, tmp_path, rules, score_threshold=0.9)
    with pytest.raises(
        Exception, match=r"silver/order_lines: quality score 0\.50 is below 0\.90; the batch of 4 rows is held back"
    ):
        run_job("batch_layer", config, spark, context("run-1"))
    held = table_rows(config.lakehouse.table_path("audit", "quarantine"))
    assert len(held) == 4
    assert {h["reason"] for h in held} == {"batch held back: score 0.50 below 0.90"}
    silver = config.lakehouse.table_path("silver", "order_lines")
    assert not lakehouse.is_delta_table(spark, silver) or lakehouse.read(spark, silver).count() == 0
    failed = [r for r in table_rows(config.lakehouse.table_path("audit", "etl_runs")) if r["status"] == "failed"]
    assert len(failed) == 1
    assert "held back" in failed[0]["error"]


def test_a_fail_rule_stops_the_run(spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path) -> None:
    rules = [{"name": "enough_lines", "type": "row_count", "min": 1000, "severity": "error", "action": "fail"}]
    config = configured(suite_config, tmp_path, rules, score_threshold=0.0)
    stops = (
        r"silver/order_lines: failed: QualityFailedError: silver/order_lines: rule\(s\) that stop the run did not pass"
    )
    with pytest.raises(JobFailedError, match=stops + r": enough_lines \(4 rows, expected \[1000, \]\)"):
        run_job("batch_layer", config, spark, context("run-1"))


def test_concurrent_audit_writers_lose_no_row(spark: SparkSession, tmp_path: Path) -> None:
    from etl_lib.runtime.dag import child_session

    path = str(tmp_path / "audit" / "shared")
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        session = child_session(spark)
        try:
            for batch in range(3):
                rows = [(index, batch, n) for n in range(10)]
                lakehouse.append_retrying(session.createDataFrame(rows, "writer INT, batch INT, n INT"), path)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    written = lakehouse.read(spark, path)
    assert written.count() == 4 * 3 * 10
    assert written.select("writer", "batch").distinct().count() == 12


def test_an_evaluation_is_recorded_when_asked_and_once_but_a_stopping_batch_records_before_it_raises(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    from etl_lib.quality.apply import check, evaluate_rules, record_outcome
    from etl_lib.quality.audit import QualityFailedError, Stamp, results_rows

    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = spark.createDataFrame([("a", 1), ("b", 5)], "line_id STRING, quantity INT")
    results = lambda config: config.lakehouse.table_path("audit", "quality_results")  # noqa: E731
    positive = [{"name": "positive", "type": "range", "column": "quantity", "min": 1}]
    config = configured(suite_config, tmp_path / "one", positive)
    stamp = Stamp("run-1", "speed_layer", 7, at)
    evaluation = evaluate_rules(config, "silver", "order_lines", rows, stamp, at)
    assert evaluation is not None
    assert evaluation.score == 1.0
    assert evaluation.kept.count() == 2
    assert not lakehouse.is_delta_table(spark, results(config))  # evaluating writes nothing
    [held] = results_rows(evaluation, stamp)  # what a stream holds for its next append
    assert (held[4], held[11], held[3]) == ("positive", True, 7)
    record_outcome(spark, config, evaluation, stamp, ("q", 7), results=False)
    assert not lakehouse.is_delta_table(spark, results(config))  # the caller holds them
    record_outcome(spark, config, evaluation, stamp, ("q", 7))
    [written] = table_rows(results(config))
    assert (written["rule"], written["passed"], written["batch_id"]) == ("positive", True, 7)
    record_outcome(spark, config, evaluation, stamp, ("q", 7))  # a replay of the same micro-batch writes nothing
    assert len(table_rows(results(config))) == 1

    many = [{"name": "enough_lines", "type": "row_count", "min": 1000, "action": "fail"}]
    config = configured(suite_config, tmp_path / "two", many)
    with pytest.raises(QualityFailedError, match="enough_lines"):
        check(spark, config, "silver", "order_lines", rows, Stamp("run-1", "job", None, at), at)
    [stopped] = table_rows(results(config))
    assert (stopped["rule"], stopped["passed"]) == ("enough_lines", False)
