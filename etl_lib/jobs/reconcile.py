"""Job ``reconcile``: the serving views of the lambda architecture, and the speed layer checked against batch.

1. The cutoff: the batch layer's high-water mark (the newest line of ``silver/order_lines``) floored to
   the speed layer's window, unless ``serving.cutoff`` names one.
2. ``gold/serving_customer_daily_revenue``: purchases per customer and day, from the batch layer's order
   lines before the cutoff and from the speed layer's session windows after it.
3. ``gold/serving_session_metrics``: session windows, recomputed from ``bronze/events`` before the cutoff
   and the speed layer's after it.
4. ``audit/reconciliation``: for every key and window both sides have seen completely, the speed value
   against the batch value of each measure, with the verdict; optionally the drifting speed windows are
   rewritten from the batch recomputation.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import Layer, ServingConfig, SuiteConfig, interval, secrets
from etl_lib.core.capture import record_read, task_scope
from etl_lib.core.run import JobResult, RunContext, run_metadata
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse
from etl_lib.layers import privacy
from etl_lib.serving import views

log = logging.getLogger(__name__)

#: Serving views, by table name in the gold layer (also their Spark SQL view names).
SERVING_TABLES = ("serving_customer_daily_revenue", "serving_session_metrics")


@dataclass(frozen=True)
class Extent:
    """The event times each side has seen: where the batch ends and the speed layer begins and ends."""

    batch_first: dt.datetime
    batch_last: dt.datetime
    speed_first: dt.datetime | None
    speed_last: dt.datetime | None


def _table(spark: SparkSession, config: SuiteConfig, layer: str, name: str, needed_by: str) -> DataFrame:
    path = config.lakehouse.table_path(layer, name)
    if not lakehouse.is_delta_table(spark, path):
        raise ConfigError(f"{layer}/{name} does not exist under {config.lakehouse.root}; {needed_by}")
    return lakehouse.read(spark, path)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def extent(lines: DataFrame, events: DataFrame) -> Extent:
    """First and last event time of the batch layer's lines and of the speed layer's events."""
    batch = lines.agg(F.min("invoice_date"), F.max("invoice_date")).first()
    speed = events.agg(F.min("timestamp"), F.max("timestamp")).first()
    if batch is None or batch[1] is None:
        raise ConfigError("silver/order_lines holds no lines: run the batch layer before reconciling")
    assert speed is not None
    first, last = _utc(batch[0]), _utc(batch[1])
    assert first is not None  # the minimum of a column whose maximum is not null
    assert last is not None
    return Extent(first, last, _utc(speed[0]), _utc(speed[1]))


def register_views(spark: SparkSession, config: SuiteConfig) -> list[str]:
    """Make the serving tables that exist queryable as Spark SQL views of the same names; returns the names."""
    registered = []
    for name in SERVING_TABLES:
        path = config.lakehouse.table_path("gold", name)
        if lakehouse.is_delta_table(spark, path):
            lakehouse.read(spark, path).createOrReplaceTempView(name)
            registered.append(name)
    return registered


# One piece, longer than 60 lines: the reads, the served views, their reconciliation and its correction are
# written in the order a reader checks them against the README.
def reconcile(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Build the serving views and reconcile the speed layer's results with a batch recomputation.

    Returns:
        The tables written and the counts of each verdict; ``summary`` is the one-line verdict.

    Raises:
        ConfigError: if the batch or speed layer has not written its tables yet.
    """
    serving, speed = config.serving, config.speed
    window = interval(speed.window)
    lateness = interval(speed.allowed_lateness)
    lake = config.lakehouse
    entity = config.entities.get("events")
    if entity is None:
        raise ConfigError(f"{config.source_file}: entities: the speed layer's entity 'events' is not declared")

    lines = _table(spark, config, "silver", "order_lines", "run the batch layer first")
    bronze_path = lake.table_path("bronze", "events")
    bronze = _table(spark, config, "bronze", "events", "run the speed layer first")
    silver = _table(spark, config, "silver", "events", "run the speed layer first")
    windows_path = lake.table_path("gold", "customer_sessions_5min")
    speed_windows = _table(spark, config, "gold", "customer_sessions_5min", "run the speed layer first")

    seen = extent(lines, silver)
    # Aligned to the window, so that no speed window straddles the cutoff.
    cutoff = views.floor_to_window(_utc(serving.cutoff) or seen.batch_last, window)
    protect = privacy.pii_protection(config.privacy.pii.get("events", {}), secrets.privacy_key(config, "events"))
    recomputed = bronze.transform(views.recomputed_session_windows(entity, speed, protect)).persist()

    revenue = views.served_daily_revenue(
        lines.transform(views.batch_daily_revenue(cutoff)), speed_windows.transform(views.speed_daily_revenue(cutoff))
    )
    sessions = views.served_session_metrics(recomputed, speed_windows, cutoff)

    checks = _comparisons(serving, seen, lateness, speed_windows, lines, recomputed)
    stamp = [F.lit(context.run_id).alias("run_id"), F.lit(context.run_time).cast("timestamp").alias("checked_at")]
    reconciliation = (
        checks[0].unionByName(checks[1]).select(*stamp, *views.RECONCILIATION_COLUMNS).persist() if checks else None
    )

    paths: dict[tuple[Layer, str], str] = {
        ("gold", "serving_customer_daily_revenue"): lake.table_path("gold", "serving_customer_daily_revenue"),
        ("gold", "serving_session_metrics"): lake.table_path("gold", "serving_session_metrics"),
        ("audit", "reconciliation"): lake.table_path("audit", "reconciliation"),
        ("gold", "customer_sessions_5min"): windows_path,
    }
    before = {key: lakehouse.current_version(spark, path) for key, path in paths.items()}
    with lakehouse.commit_metadata(spark, run_metadata(context, context.job, cutoff=cutoff.isoformat())):
        lakehouse.overwrite(revenue, paths["gold", "serving_customer_daily_revenue"])
        lakehouse.overwrite(sessions, paths["gold", "serving_session_metrics"])
    if reconciliation is not None:
        with lakehouse.commit_metadata(spark, run_metadata(context, context.job)):
            lakehouse.append(reconciliation, paths["audit", "reconciliation"])
    counts = _verdicts(reconciliation)
    corrected = 0
    if serving.correct_drift and reconciliation is not None and counts["not_matching"]:
        with task_scope(context.lineage, "correct_drift"):
            # The rewrite's input is the event log the batch recomputation read.
            record_read(bronze_path, lakehouse.current_version(spark, bronze_path))
            corrected = _correct(spark, windows_path, reconciliation, recomputed, speed_windows, context)
    register_views(spark, config)

    result = _result(spark, context, paths, before, counts, cutoff, seen.batch_last, corrected)
    log.info("%s", result.metrics["summary"])
    # The reconciliation is built on the recomputation: uncached first, so Spark does not re-plan it.
    if reconciliation is not None:
        reconciliation.unpersist()
    recomputed.unpersist()
    return result


def _comparisons(
    serving: ServingConfig,
    seen: Extent,
    lateness: dt.timedelta,
    speed_windows: DataFrame,
    lines: DataFrame,
    recomputed: DataFrame,
) -> list[DataFrame]:
    """The speed layer's daily revenue and session metrics, each set against the batch's, where both are whole.

    Only windows the speed layer has seen whole are compared: from its first event (unless the batch has nothing
    earlier) to its newest event less the lateness it still waits for. None before the speed layer has events.
    """
    checks: list[DataFrame] = []
    if seen.speed_first is not None and seen.speed_last is not None:
        upper = seen.speed_last - lateness
        lower = None if seen.batch_first >= seen.speed_first else seen.speed_first
        daily = views.within(lower, min(upper, seen.batch_last))
        checks.append(
            views.reconcile(
                "customer_daily_revenue",
                views.daily_windows(speed_windows.transform(views.speed_daily_revenue(None))).transform(daily),
                views.daily_windows(lines.transform(views.batch_daily_revenue(None))).transform(daily),
                ["customer_id"],
                views.REVENUE_MEASURES,
                serving.tolerance,
            )
        )
        checks.append(
            views.reconcile(
                "session_metrics",
                speed_windows.transform(views.within(None, upper)),
                recomputed.transform(views.within(None, upper)),
                views.SESSION_KEYS,
                views.SESSION_MEASURES,
                serving.tolerance,
            )
        )
    return checks


def _result(
    spark: SparkSession,
    context: RunContext,
    paths: dict[tuple[Layer, str], str],
    before: dict[tuple[Layer, str], int | None],
    counts: dict[str, int],
    cutoff: dt.datetime,
    batch_last: dt.datetime,
    corrected: int,
) -> JobResult:
    """The run's writes (the tables it committed to) and its verdict."""
    result = JobResult(job=context.job, run_id=context.run_id)
    for (layer, name), path in paths.items():
        written = lakehouse.writes_of_run(spark, layer, name, path, before[layer, name], context.run_id)
        if written.commits:
            result.writes.append(written)
    verdict = "consistent" if not counts["not_matching"] else "DRIFT"
    result.metrics.update(
        {
            "cutoff": cutoff.isoformat(),
            "batch_high_water_mark": batch_last.isoformat(),
            **{k: v for k, v in counts.items() if k != "not_matching"},
            "windows_corrected": corrected,
            "verdict": verdict,
            "summary": _summary(counts, verdict, cutoff, corrected),
        }
    )
    return result


def _verdicts(reconciliation: DataFrame | None) -> dict[str, int]:
    names = ("match", "drift", "missing_in_speed", "missing_in_batch")
    if reconciliation is None:
        return {"compared": 0, **dict.fromkeys(names, 0), "not_matching": 0}
    row = reconciliation.agg(
        F.count(F.lit(1)).alias("compared"), *[F.sum((F.col("verdict") == n).cast("bigint")).alias(n) for n in names]
    ).first()
    assert row is not None
    counts = {name: int(row[name] or 0) for name in ("compared", *names)}
    counts["not_matching"] = counts["compared"] - counts["match"]
    return counts


def _summary(counts: dict[str, int], verdict: str, cutoff: dt.datetime, corrected: int) -> str:
    text = (
        f"reconcile: {verdict}: {counts['compared']:,} values compared, {counts['match']:,} match, "
        f"{counts['drift']:,} drift, {counts['missing_in_speed']:,} missing in speed, "
        f"{counts['missing_in_batch']:,} missing in batch; batch serves before {cutoff.isoformat()}"
    )
    return text + (f"; {corrected:,} speed windows rewritten from batch" if corrected else "")


def _correct(
    spark: SparkSession,
    path: str,
    reconciliation: DataFrame,
    recomputed: DataFrame,
    speed_windows: DataFrame,
    context: RunContext,
) -> int:
    """Rewrite the drifting session windows of the speed layer with the batch recomputation's rows."""
    drifting = views.drifting_windows(reconciliation, "session_metrics")
    keys = [*views.SESSION_KEYS, "window_start"]

    def marked(frame: DataFrame) -> DataFrame:
        return frame.join(
            drifting,
            (views.session_key(frame) == drifting["key"]) & (frame["window_start"] == drifting["window_start"]),
        ).select(*[frame[k] for k in keys])

    affected = marked(speed_windows).unionByName(marked(recomputed)).distinct()
    columns = [c for c in speed_windows.columns if c not in keys]
    rows = (
        affected.join(recomputed.withColumn("_present", F.lit(True)), keys, "left")
        .select(*keys, *[F.col(c) for c in columns], F.coalesce("_present", F.lit(False)).alias("_present"))
        .persist()
    )
    count = rows.count()
    with lakehouse.commit_metadata(spark, run_metadata(context, "correct_drift")):
        lakehouse.replace_rows(spark, path, rows, keys, "_present")
    rows.unpersist()
    return count
