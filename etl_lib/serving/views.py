"""The lambda serving layer's views and their reconciliation, as DataFrame steps.

Each serving view answers from the batch results up to a cutoff (the batch layer's high-water mark,
aligned to the speed layer's window) and from the speed results after it: every event time belongs to
exactly one side, so the answer has no gap and no overlap. Reconciliation compares, per key and time
window, what the speed layer computed with what a batch recomputation gives.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl_lib.config import EntityConfig, SpeedConfig
from etl_lib.layers import Step, events, silver

AMOUNT = "decimal(28,3)"
#: The columns of ``audit/reconciliation``, in order.
RECONCILIATION_COLUMNS = (
    "view",
    "key",
    "window_start",
    "window_end",
    "measure",
    "speed_value",
    "batch_value",
    "difference",
    "verdict",
)
SESSION_KEYS = ("customer_id", "session_id")
SESSION_MEASURES = ("page_views", "purchases", "purchase_amount", "events")
REVENUE_MEASURES = ("revenue", "purchases")


def floor_to_window(moment: dt.datetime, window: dt.timedelta) -> dt.datetime:
    """The start of the window holding ``moment``; windows are aligned to the epoch, as Spark's ``window``."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return epoch + ((aware - epoch) // window) * window


def _day_window(day: Column) -> list[Column]:
    start = day.cast("timestamp")
    return [start.alias("window_start"), (start + F.expr("INTERVAL 1 DAY")).alias("window_end")]


def batch_daily_revenue(cutoff: dt.datetime | None) -> Step:
    """Step from ``silver/order_lines`` to purchases per customer and day, of lines before ``cutoff``.

    A purchase is a line of a known customer that is not a cancellation, as the speed layer's events are.
    """

    def step(lines: DataFrame) -> DataFrame:
        purchases = lines.where(F.col("customer_id").isNotNull() & ~F.col("is_cancellation"))
        if cutoff is not None:
            purchases = purchases.where(F.col("invoice_date") < F.lit(cutoff).cast("timestamp"))
        return purchases.groupBy(
            F.col("customer_id").cast("string").alias("customer_id"), F.to_date("invoice_date").alias("day")
        ).agg(
            F.sum("amount").cast(AMOUNT).alias("revenue"),
            F.count(F.lit(1)).alias("purchases"),
        )

    return step


def speed_daily_revenue(cutoff: dt.datetime | None) -> Step:
    """Step from ``gold/customer_sessions_5min`` to purchases per customer and day, of windows from ``cutoff``."""

    def step(windows: DataFrame) -> DataFrame:
        bought = windows.where(F.col("purchases") > 0)
        if cutoff is not None:
            bought = bought.where(F.col("window_start") >= F.lit(cutoff).cast("timestamp"))
        return bought.groupBy("customer_id", F.to_date("window_start").alias("day")).agg(
            F.sum("purchase_amount").cast(AMOUNT).alias("revenue"),
            F.sum("purchases").alias("purchases"),
        )

    return step


def served_daily_revenue(batch: DataFrame, speed: DataFrame) -> DataFrame:
    """One row per customer and day from both sides (a day the cutoff splits sums its two parts).

    ``served_from`` says which side answered: ``batch``, ``speed`` or ``batch+speed``.
    """
    sides = batch.withColumn("_side", F.lit("batch")).unionByName(speed.withColumn("_side", F.lit("speed")))
    return sides.groupBy("customer_id", "day").agg(
        F.sum("revenue").cast(AMOUNT).alias("revenue"),
        F.sum("purchases").cast("bigint").alias("purchases"),
        F.array_join(F.array_sort(F.collect_set("_side")), "+").alias("served_from"),
    )


def served_session_metrics(batch: DataFrame, speed: DataFrame, cutoff: dt.datetime | None) -> DataFrame:
    """Session windows: the batch recomputation's before ``cutoff``, the speed layer's from it.

    ``cutoff`` must be aligned to the window, so that no window straddles it.

    Args:
        batch: the session windows recomputed from bronze (:func:`recomputed_session_windows`).
        speed: the speed layer's session windows (``gold/customer_sessions_5min``).
        cutoff: the first window start served from ``speed``; None serves every window from ``batch``.
    """
    columns = [*SESSION_KEYS, "window_start", "window_end", *SESSION_MEASURES]
    if cutoff is None:
        return batch.select(*columns).withColumn("served_from", F.lit("batch"))
    at = F.lit(cutoff).cast("timestamp")
    before = batch.where(F.col("window_start") < at).select(*columns).withColumn("served_from", F.lit("batch"))
    after = speed.where(F.col("window_start") >= at).select(*columns).withColumn("served_from", F.lit("speed"))
    return before.unionByName(after)


def daily_windows(revenue: DataFrame) -> DataFrame:
    """Daily revenue rows with their day as a ``window_start``/``window_end`` pair (for comparison)."""
    return revenue.select("customer_id", *_day_window(F.col("day")), *REVENUE_MEASURES)


def within(lower: dt.datetime | None, upper: dt.datetime | None) -> Step:
    """Step keeping the windows that lie wholly in ``[lower, upper]`` (an open side when None)."""

    def step(frame: DataFrame) -> DataFrame:
        condition = F.lit(True)
        if lower is not None:
            condition = condition & (F.col("window_start") >= F.lit(lower).cast("timestamp"))
        if upper is not None:
            condition = condition & (F.col("window_end") <= F.lit(upper).cast("timestamp"))
        return frame.where(condition)

    return step


def reconcile(
    view: str, speed: DataFrame, batch: DataFrame, keys: Sequence[str], measures: Sequence[str], tolerance: float
) -> DataFrame:
    """Compare ``speed`` with ``batch`` per key, window and measure.

    Args:
        view: the name the rows carry.
        speed: the speed layer's rows: ``keys``, ``window_start``, ``window_end`` and ``measures``.
        batch: the batch recomputation, with the same columns.
        keys: the columns that identify a row within a window.
        measures: the numeric columns to compare.
        tolerance: the largest absolute difference that still counts as a match.

    Returns:
        Rows of :data:`RECONCILIATION_COLUMNS`; ``verdict`` is ``match``, ``drift``, ``missing_in_speed``
        or ``missing_in_batch`` (a missing side counts as zero in ``difference``).
    """
    on = [*keys, "window_start", "window_end"]
    left = speed.select(*on, *[F.col(m).cast(AMOUNT).alias(f"_s_{m}") for m in measures], F.lit(True).alias("_s"))
    right = batch.select(*on, *[F.col(m).cast(AMOUNT).alias(f"_b_{m}") for m in measures], F.lit(True).alias("_b"))
    joined = left.join(right, on, "full_outer")
    key = F.concat_ws(
        ", ", *[F.concat(F.lit(f"{k}="), F.coalesce(F.col(k).cast("string"), F.lit("null"))) for k in keys]
    )
    per_measure = F.explode(
        F.array(
            *[
                F.struct(
                    F.lit(m).alias("measure"),
                    F.col(f"_s_{m}").alias("speed_value"),
                    F.col(f"_b_{m}").alias("batch_value"),
                )
                for m in measures
            ]
        )
    )
    exploded = joined.select(key.alias("key"), "window_start", "window_end", "_s", "_b", per_measure.alias("m")).select(
        "key", "window_start", "window_end", "_s", "_b", "m.*"
    )
    difference = (F.coalesce("speed_value", F.lit(0)) - F.coalesce("batch_value", F.lit(0))).cast(AMOUNT)
    verdict = (
        F.when(F.col("_s").isNull(), "missing_in_speed")
        .when(F.col("_b").isNull(), "missing_in_batch")
        .when(F.abs(F.col("difference")) <= F.lit(tolerance), "match")
        .otherwise("drift")
    )
    return (
        exploded.withColumn("difference", difference)
        .withColumn("verdict", verdict)
        .select(F.lit(view).alias("view"), *[c for c in RECONCILIATION_COLUMNS if c != "view"])
    )


def drifting_windows(reconciliation: DataFrame, view: str) -> DataFrame:
    """The distinct ``(key, window_start)`` of ``view`` whose verdict is not a match."""
    return (
        reconciliation.where((F.col("view") == view) & (F.col("verdict") != "match"))
        .select("key", "window_start")
        .distinct()
    )


def session_key(frame: DataFrame) -> Column:
    """The ``key`` text :func:`reconcile` gives a session row (to join corrections back)."""
    return F.concat_ws(
        ", ", *[F.concat(F.lit(f"{k}="), F.coalesce(frame[k].cast("string"), F.lit("null"))) for k in SESSION_KEYS]
    )


def recomputed_session_windows(entity: EntityConfig, speed: SpeedConfig, protect: Step | None = None) -> Step:
    """Step recomputing the speed layer's session windows from ``bronze/events``, the immutable event log.

    The records are parsed and refused exactly as the speed layer does, one row is kept per ``event_id``,
    and the same window step aggregates them; late events and events the stream set aside count here, so
    they show up as drift. ``protect`` is the step the speed layer applies to personal columns, so that the
    windows group by the same (hashed or masked) values as the stream's.

    Args:
        entity: the events' columns and types (``entities.events``).
        speed: the ``speed`` section (payload limit, time checks, window, event types).
        protect: the speed layer's step for personal columns; None when the events have none.
    """
    parse = events.parse_events(entity, speed.max_payload_bytes, speed.max_future_skew, speed.earliest_event_time)
    windows = events.session_windows(speed.window, speed.page_view_type, speed.purchase_type)

    def step(bronze: DataFrame) -> DataFrame:
        parsed = bronze.select(*events.RAW_COLUMNS).transform(parse)
        accepted = parsed.where(silver.no_errors()).select(*entity.columns, "_payload_digest", *events.TRACE_COLUMNS)
        if protect is not None:
            accepted = accepted.transform(protect)
        return accepted.transform(events.first_per_event_id).transform(windows)

    return step
