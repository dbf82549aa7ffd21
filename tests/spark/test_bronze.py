from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.layers.bronze import INGESTION_COLUMNS, with_ingestion_metadata

RUN_TIME = dt.datetime(2011, 12, 9, 13, 0, 0, tzinfo=dt.UTC)


def test_ingestion_metadata_is_added_and_landed_columns_are_untouched(spark: SparkSession) -> None:
    landed = spark.createDataFrame(
        [(" 536365", "85123A", "6", "/in/a.csv"), ("C536379", "D", "-1", "/in/b.csv")],
        "InvoiceNo STRING, StockCode STRING, Quantity STRING, path STRING",
    )

    bronze = landed.transform(with_ingestion_metadata("erp", F.col("path"), "run-1", RUN_TIME))

    expected = spark.createDataFrame(
        [
            (" 536365", "85123A", "6", "/in/a.csv", "erp", "/in/a.csv", RUN_TIME, "run-1"),
            ("C536379", "D", "-1", "/in/b.csv", "erp", "/in/b.csv", RUN_TIME, "run-1"),
        ],
        "InvoiceNo STRING, StockCode STRING, Quantity STRING, path STRING, "
        "_source STRING, _source_object STRING, _ingested_at TIMESTAMP, _run_id STRING",
    )
    assert_df_equality(bronze, expected, ignore_nullable=True)
    assert tuple(bronze.columns[-4:]) == INGESTION_COLUMNS
