"""The kept events a micro-batch is judged against: found whole, by one join however many batches were kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from etl_lib.jobs import speed_layer

DAY = dt.date(2026, 12, 1)
WATERMARK = dt.datetime(2026, 12, 1, 12)


def _batch(spark: SparkSession, ids: list[tuple[str, list[str]]]) -> DataFrame:
    """A parsed batch: each event's id and the checks it failed."""
    return spark.createDataFrame(ids, "event_id STRING, _errors ARRAY<STRING>")


def _appended(spark: SparkSession, ids: list[str]) -> DataFrame:
    """The rows a batch appended to silver, with the columns the query keeps of them."""
    return spark.createDataFrame(
        [(i, f"digest-{i}", DAY) for i in ids], "event_id STRING, _payload_digest STRING, event_date DATE"
    )


def test_a_batch_finds_its_ids_among_every_kept_batch_with_one_join(spark: SparkSession, tmp_path: Path) -> None:
    silver = str(tmp_path / "silver")
    spark.createDataFrame(
        [
            ("a", "digest-a", DAY, "q", 0),
            ("b", "digest-b", DAY, "q", 0),
            ("old", "digest-old", DAY - dt.timedelta(2), "q", 0),
        ],
        "event_id STRING, _payload_digest STRING, event_date DATE, _query_id STRING, _batch_id BIGINT",
    ).write.format("delta").save(silver)
    kept = speed_layer._KeptIds(silver)
    kept.stored(spark, _batch(spark, [("c", [])]), "q", 1, WATERMARK)  # the run's first batch reads silver
    for ids in (["c", "d"], ["e"], ["f"]):
        kept.add(_appended(spark, ids))

    found = kept.stored(
        spark,
        # "f" failed a check (not looked up), "x" was never kept, "old" is before the window.
        _batch(spark, [("a", []), ("c", []), ("c", []), ("e", []), ("f", ["type"]), ("x", []), ("old", [])]),
        "q",
        4,
        WATERMARK,
    )

    expected = spark.createDataFrame(
        [("a", "digest-a"), ("c", "digest-c"), ("e", "digest-e")], "event_id STRING, _payload_digest STRING"
    )
    assert_df_equality(found, expected, ignore_row_order=True, ignore_nullable=True)
    # One join above the union of the four kept frames: a join pushed below it (one per kept batch) made a batch's
    # jobs grow with every batch the query had run.
    assert found._jdf.queryExecution().sparkPlan().toString().count("Join") == 1
