"""Job bookmarks: the high-water mark of each incremental source, kept in a Delta table.

``audit/bookmarks`` gets one row per committed extract. The mark also travels in the metadata of the
bronze commit that landed the rows, so a run that died between landing and bookmarking is recognised:
the next run takes the newer of the two, records it, and reads nothing twice.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.io import lakehouse
from etl_lib.io.sources.jdbc import Increment, Mark, mark_from_text, mark_to_text

BOOKMARK_SCHEMA = (
    "source STRING, watermark_column STRING, mark_type STRING, high_water_mark STRING, "
    "rows_read BIGINT, query STRING, run_id STRING, committed_at TIMESTAMP"
)


def bookmarked_mark(spark: SparkSession, bookmarks: str, source: str) -> Mark | None:
    """The latest mark the bookmark table holds for ``source``."""
    if not lakehouse.is_delta_table(spark, bookmarks):
        return None
    # Marks only grow, so the newest is the greatest (whatever the clocks of the runs said).
    row = (
        lakehouse.read(spark, bookmarks)
        .where(F.col("source") == source)
        .orderBy(
            F.expr("try_cast(high_water_mark AS DECIMAL(38,0))").desc_nulls_last(),
            F.expr("try_cast(high_water_mark AS TIMESTAMP)").desc_nulls_last(),
        )
        .select("mark_type", "high_water_mark")
        .first()
    )
    return None if row is None else mark_from_text(row["mark_type"], row["high_water_mark"])


def _landed(spark: SparkSession, bronze: str, source: str) -> Mark | None:
    commit = lakehouse.last_commit_where(
        spark, bronze, lambda c: c.user_metadata.get("source") == source and "high_water_mark" in c.user_metadata
    )
    if commit is None:
        return None
    return mark_from_text(str(commit.user_metadata["mark_type"]), str(commit.user_metadata["high_water_mark"]))


def committed_mark(spark: SparkSession, bookmarks: str, bronze: str, source: str) -> Mark | None:
    """The newest mark committed for ``source``, by the bookmark table or by a bronze commit.

    Args:
        spark: the session.
        bookmarks: the bookmark table (``audit/bookmarks``).
        bronze: the source's bronze table, whose commits carry the marks of the rows they landed.
        source: the source's name (its key under ``sources``).
    """
    marks = [
        mark for mark in (bookmarked_mark(spark, bookmarks, source), _landed(spark, bronze, source)) if mark is not None
    ]
    return max(marks) if marks else None


def landing_metadata(source: str, increment: Increment) -> dict[str, object]:
    """What the bronze commit of an increment records about it."""
    kind, text = mark_to_text(increment.upto)
    return {"source": source, "mark_type": kind, "high_water_mark": text, "rows_read": increment.rows}


def record_mark(
    spark: SparkSession,
    bookmarks: str,
    source: str,
    watermark_column: str,
    mark: Mark,
    rows_read: int,
    query: str,
    run_id: str,
    committed_at: dt.datetime,
) -> None:
    """Append the committed mark of ``source`` to the bookmark table.

    Args:
        spark: the session.
        bookmarks: the bookmark table (``audit/bookmarks``).
        source: the source's name (its key under ``sources``).
        watermark_column: the source column the mark is a value of.
        mark: the high-water mark: the greatest value of ``watermark_column`` landed in bronze (a number or a time).
        rows_read: rows the run extracted; 0 when it only recorded a mark a bronze commit already had.
        query: the SQL the rows were extracted with, or why there was none.
        run_id: the run recording the mark.
        committed_at: when the run started (the run's time).
    """
    kind, text = mark_to_text(mark)
    row = [(source, watermark_column, kind, text, rows_read, query, run_id, committed_at)]
    lakehouse.append(spark.createDataFrame(row, BOOKMARK_SCHEMA), bookmarks)
