"""Bronze: data exactly as it landed, plus where and when it came from."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl_lib.layers import Step

#: Columns bronze adds to every landed row.
INGESTION_COLUMNS = ("_source", "_source_object", "_ingested_at", "_run_id")


def with_ingestion_metadata(
    source: str,
    origin: Column,
    run_id: str,
    ingested_at: dt.datetime,
) -> Step:
    """Step adding the ingestion columns to landed rows, leaving the landed columns untouched.

    Args:
        source: name of the configured source.
        origin: per-row file path, query or stream coordinate the row came from.
        run_id: id of the run that ingests the rows.
        ingested_at: time of that run (UTC).

    Returns:
        A ``DataFrame -> DataFrame`` step for ``df.transform``.
    """

    def step(frame: DataFrame) -> DataFrame:
        return frame.select(
            "*",
            F.lit(source).alias("_source"),
            origin.cast("string").alias("_source_object"),
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
            F.lit(run_id).alias("_run_id"),
        )

    return step
