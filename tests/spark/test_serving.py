"""The lambda serving views and their reconciliation: small frames, then the real replayed data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import JobResult, RunContext
from etl_lib.io import lakehouse
from etl_lib.producer.replay import replay
from etl_lib.runtime.runner import run_job
from etl_lib.serving import views
from tests.conftest import copied_lake

T = dt.datetime
CLOCK = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LINES = "customer_id STRING, invoice_date TIMESTAMP, is_cancellation BOOLEAN, amount DECIMAL(18,3)"
WINDOWS = (
    "customer_id STRING, session_id STRING, window_start TIMESTAMP, window_end TIMESTAMP, page_views BIGINT, "
    "purchases BIGINT, purchase_amount DECIMAL(28,3), events BIGINT, last_event_time TIMESTAMP"
)
SERVED = "customer_id STRING, day DATE, revenue DECIMAL(28,3), purchases BIGINT, served_from STRING"


def window(customer: str, start: T, purchases: int, amount: str) -> tuple[Any, ...]:
    return (
        customer,
        f"s-{customer}",
        start,
        start + dt.timedelta(minutes=5),
        1,
        purchases,
        Decimal(amount),
        purchases + 1,
        start,
    )


def test_windows_are_aligned_to_the_epoch() -> None:
    five = dt.timedelta(minutes=5)
    assert views.floor_to_window(T(2011, 12, 9, 12, 50, 0), five) == T(2011, 12, 9, 12, 50, tzinfo=dt.UTC)
    assert views.floor_to_window(T(2011, 12, 9, 12, 54, 59), five) == T(2011, 12, 9, 12, 50, tzinfo=dt.UTC)
    assert views.floor_to_window(T(2011, 12, 9, 23, 59, tzinfo=dt.UTC), dt.timedelta(days=1)) == T(
        2011, 12, 9, tzinfo=dt.UTC
    )


def test_daily_revenue_takes_batch_before_the_cutoff_and_speed_after(spark: SparkSession) -> None:
    cutoff = T(2011, 1, 1, 10, 5, tzinfo=dt.UTC)
    lines = spark.createDataFrame(
        [
            ("1", T(2011, 1, 1, 9, 0), False, Decimal("10.000")),  # batch's
            ("1", T(2011, 1, 1, 10, 7), False, Decimal("99.000")),  # after the cutoff: the speed layer answers
            ("1", T(2011, 1, 1, 9, 30), True, Decimal("-5.000")),  # a cancellation is not a purchase
            (None, T(2011, 1, 1, 9, 0), False, Decimal("7.000")),  # nor is a line of no known customer
            ("2", T(2010, 12, 31, 23, 0), False, Decimal("3.500")),
        ],
        LINES,
    )
    speed = spark.createDataFrame(
        [
            window("1", T(2011, 1, 1, 9, 0), 1, "10.000"),  # before the cutoff: the batch answers
            window("1", T(2011, 1, 1, 10, 5), 2, "20.000"),
            window("2", T(2011, 1, 2, 8, 0), 1, "4.250"),
            window("3", T(2011, 1, 2, 8, 0), 0, "0.000"),  # page views only
        ],
        WINDOWS,
    )
    served = views.served_daily_revenue(
        lines.transform(views.batch_daily_revenue(cutoff)), speed.transform(views.speed_daily_revenue(cutoff))
    )
    expected = spark.createDataFrame(
        [
            ("1", dt.date(2011, 1, 1), Decimal("30.000"), 3, "batch+speed"),
            ("2", dt.date(2010, 12, 31), Decimal("3.500"), 1, "batch"),
            ("2", dt.date(2011, 1, 2), Decimal("4.250"), 1, "speed"),
        ],
        SERVED,
    )
    assert_df_equality(served, expected, ignore_row_order=True, ignore_nullable=True)


def test_session_metrics_switch_sides_at_the_cutoff(spark: SparkSession) -> None:
    cutoff = T(2011, 1, 1, 10, 5, tzinfo=dt.UTC)
    batch = spark.createDataFrame(
        [window("1", T(2011, 1, 1, 10, 0), 1, "1.000"), window("1", T(2011, 1, 1, 10, 5), 9, "9.000")], WINDOWS
    )
    speed = spark.createDataFrame(
        [window("1", T(2011, 1, 1, 10, 0), 7, "7.000"), window("1", T(2011, 1, 1, 10, 5), 2, "2.000")], WINDOWS
    )
    served = views.served_session_metrics(batch, speed, cutoff).select("window_start", "purchases", "served_from")
    expected = spark.createDataFrame(
        [(T(2011, 1, 1, 10, 0), 1, "batch"), (T(2011, 1, 1, 10, 5), 2, "speed")],
        "window_start TIMESTAMP, purchases BIGINT, served_from STRING",
    )
    assert_df_equality(served, expected, ignore_row_order=True, ignore_nullable=True)


def test_reconcile_reports_each_measure_with_its_verdict(spark: SparkSession) -> None:
    start = T(2011, 1, 1, 10, 0)
    speed = spark.createDataFrame(
        [window("1", start, 1, "10.000"), window("2", start, 2, "20.010"), window("4", start, 1, "1.000")], WINDOWS
    )
    batch = spark.createDataFrame(
        [window("1", start, 1, "10.000"), window("2", start, 2, "20.000"), window("3", start, 1, "5.000")], WINDOWS
    )
    result = views.reconcile(
        "sessions", speed, batch, ["customer_id", "session_id"], ["purchases", "purchase_amount"], tolerance=0.005
    )
    end = start + dt.timedelta(minutes=5)

    def row(key: str, measure: str, s: str | None, b: str | None, diff: str, verdict: str) -> tuple[Any, ...]:
        value = {None: None} | {x: Decimal(x) for x in (s, b, diff) if x is not None}
        return ("sessions", key, start, end, measure, value[s], value[b], value[diff], verdict)

    expected = spark.createDataFrame(
        [
            row("customer_id=1, session_id=s-1", "purchases", "1.000", "1.000", "0.000", "match"),
            row("customer_id=1, session_id=s-1", "purchase_amount", "10.000", "10.000", "0.000", "match"),
            row("customer_id=2, session_id=s-2", "purchases", "2.000", "2.000", "0.000", "match"),
            row("customer_id=2, session_id=s-2", "purchase_amount", "20.010", "20.000", "0.010", "drift"),
            row("customer_id=3, session_id=s-3", "purchases", None, "1.000", "-1.000", "missing_in_speed"),
            row("customer_id=3, session_id=s-3", "purchase_amount", None, "5.000", "-5.000", "missing_in_speed"),
            row("customer_id=4, session_id=s-4", "purchases", "1.000", None, "1.000", "missing_in_batch"),
            row("customer_id=4, session_id=s-4", "purchase_amount", "1.000", None, "1.000", "missing_in_batch"),
        ],
        "view STRING, key STRING, window_start TIMESTAMP, window_end TIMESTAMP, measure STRING, "
        "speed_value DECIMAL(28,3), batch_value DECIMAL(28,3), difference DECIMAL(28,3), verdict STRING",
    )
    assert_df_equality(result, expected, ignore_row_order=True, ignore_nullable=True)


# --- the real data: the batch layer over the whole extract, the speed layer over the first replayed events


def run(spark: SparkSession, job: str, config: SuiteConfig, run_id: str) -> JobResult:
    context = RunContext.new(job, clock=lambda: CLOCK, new_id=lambda: run_id)
    return run_job(job, config, spark, context)


def with_settings(config: SuiteConfig, **serving: Any) -> SuiteConfig:
    data = config.model_dump(mode="json")
    data["serving"].update(serving)
    return validate_config(data)


@pytest.fixture(scope="module")
def lambda_lake(spark: SparkSession, retail_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The retail lakehouse plus the speed layer's tables of the first 9,000 replayed events (two days)."""
    folder = tmp_path_factory.mktemp("serving")
    config = copied_lake(retail_lake, folder / "lake")
    data = config.model_dump(mode="json")
    data["speed"]["source"] = "files"
    data["speed"]["files"]["path"] = str(folder / "landing")
    data["run"]["available_now"] = True
    config = validate_config(data)
    replay(config, "files", limit=9000, batch_size=3000)
    run(spark, "speed_layer", config, "speed-1")
    return config


def table(spark: SparkSession, config: SuiteConfig, layer: str, name: str) -> Any:
    return lakehouse.read(spark, config.lakehouse.table_path(layer, name))  # type: ignore[arg-type]


# The jobs end to end on the retail lakehouse, on the primary line; the views and the reconciliation's queries
# run on both lines in the tests above (see the primary_line marker).
@pytest.mark.primary_line
def test_replayed_real_data_reconciles_with_zero_difference(spark: SparkSession, lambda_lake: SuiteConfig) -> None:
    result = run(spark, "reconcile", lambda_lake, "reconcile-1")
    metrics = result.metrics
    assert metrics["verdict"] == "consistent", metrics["summary"]
    assert metrics["batch_high_water_mark"] == "2011-12-09T12:50:00+00:00"
    assert metrics["cutoff"] == "2011-12-09T12:50:00+00:00"
    rows = table(spark, lambda_lake, "audit", "reconciliation").where("run_id = 'reconcile-1'")
    by_view = {r["view"]: r["n"] for r in rows.groupBy("view").agg(F.count(F.lit(1)).alias("n")).collect()}
    # Every day the stream has seen whole (up to its newest event less the lateness it waits for) is compared.
    newest = table(spark, lambda_lake, "silver", "events").agg(F.max("timestamp")).first()[0]  # type: ignore[index]
    last_whole_day = (newest - dt.timedelta(minutes=10)).date() - dt.timedelta(days=1)
    assert last_whole_day == dt.date(2010, 12, 2)
    whole_days = table(spark, lambda_lake, "silver", "order_lines").where(
        f"customer_id IS NOT NULL AND NOT is_cancellation AND invoice_day <= DATE'{last_whole_day}'"
    )
    pairs = whole_days.select("customer_id", "invoice_day").distinct().count()
    assert by_view["customer_daily_revenue"] == pairs * len(views.REVENUE_MEASURES)
    assert by_view["session_metrics"] > 0
    assert rows.where("verdict <> 'match' OR difference <> 0").count() == 0
    assert metrics["compared"] == rows.count() == metrics["match"]
    assert result.metrics["summary"].startswith("reconcile: consistent: ")


@pytest.mark.primary_line
def test_serving_is_gap_free_across_the_cutoff(spark: SparkSession, lambda_lake: SuiteConfig) -> None:
    cutoff = "2010-12-01T12:02:00"  # inside the first day: the batch answers before 12:00, the speed layer after
    config = with_settings(lambda_lake, cutoff=cutoff)
    result = run(spark, "reconcile", config, "reconcile-cut")
    assert result.metrics["cutoff"] == "2010-12-01T12:00:00+00:00"  # floored to the 5-minute window
    served = table(spark, config, "gold", "serving_customer_daily_revenue").where("day = DATE'2010-12-01'")
    truth = (
        table(spark, config, "silver", "order_lines")
        .transform(views.batch_daily_revenue(None))
        .where("day = DATE'2010-12-01'")
    )
    assert_df_equality(served.drop("served_from"), truth, ignore_row_order=True, ignore_nullable=True)
    sides = {r["served_from"] for r in served.select("served_from").distinct().collect()}
    assert {"batch", "speed"} <= sides
    # Spark SQL sees the serving views by name.
    assert spark.sql("SELECT count(*) FROM serving_session_metrics WHERE served_from = 'speed'").first()[0] > 0  # type: ignore[index]


@pytest.mark.primary_line
def test_injected_drift_is_reported_and_corrected(
    spark: SparkSession, lambda_lake: SuiteConfig, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(lambda_lake.lakehouse.root, tmp_path / "lake")
    config = lambda_lake.model_copy(
        update={"lakehouse": lambda_lake.lakehouse.model_copy(update={"root": str(tmp_path / "lake")})}
    )
    path = config.lakehouse.table_path("gold", "customer_sessions_5min")
    windows = (
        table(spark, config, "gold", "customer_sessions_5min")
        .where("purchases > 1")
        .orderBy("window_start", "customer_id", "session_id")
        .take(50)
    )
    first = windows[0]
    second = next(w for w in windows if w["customer_id"] != first["customer_id"])
    DeltaTable.forPath(spark, path).update(
        f"session_id = '{first['session_id']}' AND window_start = '{first['window_start']}'",
        {"purchase_amount": "purchase_amount + 1"},
    )
    DeltaTable.forPath(spark, path).delete(
        f"session_id = '{second['session_id']}' AND window_start = '{second['window_start']}'"
    )
    result = run(spark, "reconcile", config, "reconcile-drift")
    assert result.metrics["verdict"] == "DRIFT"
    audit = table(spark, config, "audit", "reconciliation").where("run_id = 'reconcile-drift'")
    sessions = {
        r["verdict"]: r["n"]
        for r in audit.where("view = 'session_metrics' AND verdict <> 'match'")
        .groupBy("verdict")
        .count()
        .withColumnRenamed("count", "n")
        .collect()
    }
    assert sessions == {"drift": 1, "missing_in_speed": len(views.SESSION_MEASURES)}
    days = audit.where("view = 'customer_daily_revenue' AND verdict <> 'match'").select("key").distinct().collect()
    assert sorted(r["key"] for r in days) == sorted(f"customer_id={w['customer_id']}" for w in (first, second))
    drifted = (
        table(spark, config, "audit", "reconciliation")
        .where("run_id = 'reconcile-drift' AND view = 'session_metrics' AND verdict = 'drift'")
        .select("key", "measure", "speed_value", "batch_value", "difference")
    )
    expected = spark.createDataFrame(
        [
            (
                f"customer_id={first['customer_id']}, session_id={first['session_id']}",
                "purchase_amount",
                first["purchase_amount"] + 1,
                first["purchase_amount"],
                Decimal("1.000"),
            )
        ],
        "key STRING, measure STRING, speed_value DECIMAL(28,3), batch_value DECIMAL(28,3), difference DECIMAL(28,3)",
    )
    assert_df_equality(drifted, expected, ignore_nullable=True)

    fixed = run(spark, "reconcile", with_settings(config, correct_drift=True), "reconcile-fix")
    assert fixed.metrics["windows_corrected"] == 2
    lineage = table(spark, config, "audit", "lineage_events").where(
        "run_id = 'reconcile-fix' AND task = 'correct_drift' AND kind = 'write'"
    )
    assert [(r["dataset"], [i["dataset"] for i in r["inputs"]]) for r in lineage.collect()] == [
        ("gold/customer_sessions_5min", ["bronze/events"])
    ]
    again = run(spark, "reconcile", config, "reconcile-after")
    assert again.metrics["verdict"] == "consistent", again.metrics["summary"]


def test_the_delta_fallback_answers_what_the_realtime_store_holds(spark: SparkSession, lake: SuiteConfig) -> None:
    # The latest session of customer a has no page view: its current page is none, not an older session's.
    from etl_lib.serving import realtime

    at = dt.datetime(2011, 12, 9, 10, 0)
    values = spark.createDataFrame(
        [("a", Decimal("10.500"), 2, at, at), ("c", Decimal("3.000"), 1, at, at)],
        "customer_id string, lifetime_value decimal(18,3), purchase_count bigint, "
        "first_purchase_at timestamp, last_purchase_at timestamp",
    )
    minutes = dt.timedelta(minutes=1)
    sessions = spark.createDataFrame(
        [
            ("a", "s1", "/p1", at),
            ("a", "s2", None, at + 30 * minutes),
            ("b", "s3", "/p3", at),
            ("b", "s4", "/p4", at + 10 * minutes),
            ("b", None, "/p0", at - 10 * minutes),
        ],
        "customer_id string, session_id string, current_page string, last_activity timestamp",
    )
    lakehouse.overwrite(values, lake.lakehouse.table_path("gold", "customer_value"))
    lakehouse.overwrite(sessions, lake.lakehouse.table_path("gold", "customer_sessions"))
    touched = spark.createDataFrame([("a",), ("b",), ("c",)], "customer_id string")
    stored = {
        row["customer_id"]: realtime.hash_of(row.asDict())
        for row in touched.transform(realtime.customer_metrics(values, sessions, 7, at)).collect()
    }

    assert stored["a"]["last_session_id"] == "s2"
    assert "current_page" not in stored["a"]
    assert stored["b"]["current_page"] == "/p4"
    for customer, fields in stored.items():
        expected = {name: value for name, value in fields.items() if name not in ("updated_batch", "updated_at")}
        assert realtime._from_delta(lake, customer) == expected, customer
