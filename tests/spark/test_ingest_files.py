from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig
from etl_lib.core.run import RunContext
from etl_lib.io.portable import delta_rows, duckdb_query
from etl_lib.runtime.runner import run_job

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


def context(run_id: str) -> RunContext:
    return RunContext.new("ingest_files", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: run_id)


def with_landing(config: SuiteConfig, landing: Path) -> SuiteConfig:
    source = config.sources["online_retail"].model_copy(update={"path": str(landing)})
    return config.model_copy(update={"sources": {"online_retail": source}})


def test_the_full_real_extract_lands_in_bronze_with_its_facts(spark: SparkSession, retail_lake: dict[str, Any]) -> None:
    # The session lands the whole extract once (conftest's retail lakehouse): its bronze is what ingest_files writes.
    [write] = [w for w in retail_lake["first"].writes if (w.layer, w.table) == ("bronze", "online_retail")]
    assert (write.rows_written, write.version) == (541_909, 0)

    bronze = spark.read.format("delta").load(write.path)
    facts = bronze.agg(
        F.count("*").alias("rows"),
        F.sum("Quantity").alias("quantity"),
        F.countDistinct("InvoiceNo").alias("invoices"),
        F.countDistinct("StockCode").alias("stock_codes"),
        F.countDistinct("CustomerID").alias("customers"),
        F.countDistinct("Country").alias("countries"),
        F.sum(F.col("CustomerID").isNull().cast("int")).alias("no_customer"),
        F.countDistinct("_source_object").alias("files"),
        F.countDistinct("_run_id").alias("runs"),
    ).first()
    assert facts is not None
    assert facts.asDict() == {
        "rows": 541_909,
        "quantity": 5_176_450,
        "invoices": 25_900,
        "stock_codes": 4_070,
        "customers": 4_372,
        "countries": 38,
        "no_customer": 135_080,
        "files": 1,
        "runs": 1,
    }
    # As landed: the extract's own columns and types, then the ingestion columns.
    assert bronze.dtypes == [
        ("InvoiceNo", "string"),
        ("StockCode", "string"),
        ("Description", "string"),
        ("Quantity", "bigint"),
        ("InvoiceDate", "timestamp_ntz"),
        ("UnitPrice", "double"),
        ("CustomerID", "bigint"),
        ("Country", "string"),
        ("_source", "string"),
        ("_source_object", "string"),
        ("_ingested_at", "timestamp"),
        ("_run_id", "string"),
    ]

    # Other engines read the same table and see the same rows.
    assert delta_rows(write.path) == 541_909
    assert duckdb_query("SELECT count(*), sum(Quantity) FROM t", t=write.path) == [(541_909, 5_176_450)]

    # The batch layer's second run of the same date landed nothing.
    [again] = [w for w in retail_lake["second"].writes if (w.layer, w.table) == ("bronze", "online_retail")]
    assert (again.rows_written, again.version) == (0, 0)


def test_only_files_landed_since_the_last_run_are_read(spark: SparkSession, lake: SuiteConfig, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    table = pq.read_table(DATA)
    pq.write_table(table.slice(0, 1000), landing / "part-1.parquet")
    config = with_landing(lake, landing)

    first = run_job("ingest_files", config, spark, context("run-1"))
    assert [w.rows_written for w in first.writes] == [1000]

    pq.write_table(table.slice(1000, 500), landing / "part-2.parquet")
    second = run_job("ingest_files", config, spark, context("run-2"))
    assert [(w.rows_written, w.version) for w in second.writes] == [(500, 1)]
    # Nothing new: nothing is read, no commit is made.
    third = run_job("ingest_files", config, spark, context("run-3"))
    assert [(w.rows_written, w.version) for w in third.writes] == [(0, 1)]

    bronze = spark.read.format("delta").load(first.writes[0].path)
    per_run = {
        (row["_run_id"], Path(row["_source_object"]).name): row["count"]
        for row in bronze.groupBy("_run_id", "_source_object").count().collect()
    }
    assert per_run == {("run-1", "part-1.parquet"): 1000, ("run-2", "part-2.parquet"): 500}
    shutil.rmtree(landing)
