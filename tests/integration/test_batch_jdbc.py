"""The batch layer's JDBC path against a real PostgreSQL: half the rows, a run, the rest, a run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib import lakehouse
from etl_lib.config import SuiteConfig, validate_config
from etl_lib.platform.runner import run_job
from etl_lib.platform.runtime import RunContext
from etl_lib.services.postgres import ORDER_COLUMNS, PostgresService

# A test of the suite's own logic, on the primary line: the JDBC driver and Spark's JDBC source run on both lines in
# test_services (see the primary_line marker).
pytestmark = pytest.mark.primary_line

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


def context(run_id: str) -> RunContext:
    return RunContext.new("batch_layer", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: run_id)


def jdbc_config(base: SuiteConfig, postgres: PostgresService, root: Path) -> SuiteConfig:
    pg = postgres.pg
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["run"]["process_date"] = "2011-12-10"
    data["sources"] = {
        "orders_db": {
            "kind": "jdbc",
            "url": pg.jdbc_url,
            "user": pg.user,
            "password_env": pg.password_env,
            "password_file": str(postgres.state_dir / "password"),
            "source_table": "public.online_retail",
            "table": "orders_db",
            "watermark_column": "id",
            "partition_column": "id",
            "num_partitions": 4,
            "partition_threshold_rows": 10_000,
            "entity": "order_lines",
            "columns": {name: name for name in ORDER_COLUMNS},
        }
    }
    return validate_config(data)


def test_half_then_the_rest_lands_every_row_once(
    spark: SparkSession, suite_config: SuiteConfig, postgres: PostgresService, tmp_path: Path
) -> None:
    with postgres.connect() as connection:
        connection.execute("DROP TABLE IF EXISTS online_retail")
    extract = pq.read_table(DATA)
    half = extract.num_rows // 2
    config = jdbc_config(suite_config, postgres, tmp_path / "lake")
    path = config.lakehouse.table_path

    assert postgres.load_order_lines(extract.slice(0, half)) == half
    first = run_job("batch_layer", config, spark, context("run-1"))
    written = {f"{w.layer}/{w.table}": w.rows_written for w in first.writes}
    assert written["bronze/orders_db"] == half
    assert written["audit/bookmarks"] == 1

    assert postgres.load_order_lines(extract.slice(half)) == extract.num_rows - half
    second = run_job("batch_layer", config, spark, context("run-2"))
    assert {f"{w.layer}/{w.table}": w.rows_written for w in second.writes}[
        "bronze/orders_db"
    ] == extract.num_rows - half

    bronze = lakehouse.read(spark, path("bronze", "orders_db"))
    assert bronze.count() == 541_909
    assert bronze.select("id").distinct().count() == 541_909
    assert bronze.groupBy("_run_id").count().orderBy("_run_id").collect() == [
        ("run-1", half),
        ("run-2", 541_909 - half),
    ]
    # Every row once in silver: the 5,268 exact duplicates collapse, across the two loads as within them.
    lines = lakehouse.read(spark, path("silver", "order_lines"))
    assert lines.count() == 536_641
    assert lines.select("line_id").distinct().count() == 536_641
    assert lines.agg(F.countDistinct("customer_id")).first()[0] == 4_372  # type: ignore[index]

    marks = lakehouse.read(spark, path("audit", "bookmarks")).orderBy("committed_at", "rows_read")
    assert [(r["source"], r["high_water_mark"], r["rows_read"]) for r in marks.collect()] == [
        ("orders_db", str(half), half),
        ("orders_db", "541909", 541_909 - half),
    ]

    # Nothing new in the database: nothing is read, nothing is written.
    third = run_job("batch_layer", config, spark, context("run-3"))
    assert {w.rows_written for w in third.writes} == {0}


def test_a_mark_lost_after_landing_is_recovered_from_the_bronze_commit(
    spark: SparkSession, suite_config: SuiteConfig, postgres: PostgresService, tmp_path: Path
) -> None:
    with postgres.connect() as connection:
        connection.execute("DROP TABLE IF EXISTS online_retail")
    postgres.load_order_lines(pq.read_table(DATA).slice(0, 1000))
    config = jdbc_config(suite_config, postgres, tmp_path / "lake")
    run_job("batch_layer", config, spark, context("run-1"))
    # As if the run had died after landing in bronze but before writing its bookmark.
    marks = config.lakehouse.table_path("audit", "bookmarks")
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, marks).delete()
    postgres.load_order_lines(pq.read_table(DATA).slice(1000, 500))
    second = run_job("batch_layer", config, spark, context("run-2"))
    assert {f"{w.layer}/{w.table}": w.rows_written for w in second.writes}["bronze/orders_db"] == 500
    assert lakehouse.read(spark, config.lakehouse.table_path("bronze", "orders_db")).count() == 1500
