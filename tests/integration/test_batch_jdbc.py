"""The batch layer's JDBC path against a real PostgreSQL: part of the rows, a run, the rest, a run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.io import lakehouse
from etl_lib.runtime.runner import run_job
from etl_lib.services.postgres import ORDER_COLUMNS, PostgresService
from tests.exports import ENTITY_COLUMNS

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
            # Below the slice's halves, so that both loads are read in ranges of the partition column.
            "partition_threshold_rows": 4_000,
            "entity": "order_lines",
            "columns": {name: name for name in ORDER_COLUMNS},
        }
    }
    return validate_config(data)


#: The first lines of the extract: the facts of the whole extract are asserted where it is landed once (the session's
#: retail lakehouse); this test is about the JDBC path, on a slice with exact duplicates.
ROWS = 12_000


def split_at_a_duplicate(extract: pa.Table) -> int:
    """Where to split ``extract`` in two loads so that a row's exact duplicate is in the second, nearest the middle."""
    rows = list(zip(*(extract.column(name).to_pylist() for name in ORDER_COLUMNS.values()), strict=True))
    first: dict[tuple[object, ...], int] = {}
    seconds = [index for index, row in enumerate(rows) if first.setdefault(row, index) != index]
    assert seconds, "the slice has no exact duplicate"
    return min(seconds, key=lambda index: abs(index - len(rows) // 2))


#: An ERP's table: its columns named with spaces, punctuation, a currency sign, an accent; dates as text.
EXPORT_TABLE = ("public", "sales_lines")


def load_export(postgres: PostgresService, rows: pa.Table, modified: dt.datetime) -> None:
    """Append ``rows`` to the ERP's table, its dates as ``dd.MM.yyyy HH:mm`` text, all modified at ``modified``."""
    from psycopg import sql

    table = sql.Identifier(*EXPORT_TABLE)
    columns = [ENTITY_COLUMNS[name] for name in ORDER_COLUMNS]
    with postgres.connect() as connection:
        connection.execute(
            sql.SQL(
                'CREATE TABLE IF NOT EXISTS {} ("Line No" BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, '
                '"Invoice" TEXT, "StockCode" TEXT, "Description" TEXT, "Qté" INTEGER, "Invoice Date" TEXT, '
                '"Unit Price (£)" NUMERIC(12, 3), "Customer ID" BIGINT, "Country" TEXT, "Last Modified" TIMESTAMP)'
            ).format(table)
        )
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            table, sql.SQL(", ").join(sql.Identifier(c) for c in [*columns, "Last Modified"])
        )
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for record in rows.select(list(ORDER_COLUMNS.values())).to_pylist():
                values = list(record.values())
                values[4] = values[4].strftime("%d.%m.%Y %H:%M")
                copy.write_row([*values, modified])


def test_half_then_the_rest_lands_every_row_once(
    spark: SparkSession, suite_config: SuiteConfig, postgres: PostgresService, tmp_path: Path
) -> None:
    """An ERP's table under its own column names, extracted by `Last Modified`, read in ranges of `Line No`."""
    with postgres.connect() as connection:
        connection.execute("DROP TABLE IF EXISTS public.sales_lines")
    extract = pq.read_table(DATA).slice(0, ROWS)
    distinct = extract.select(list(ORDER_COLUMNS.values())).group_by(list(ORDER_COLUMNS.values())).aggregate([])
    customers = len(pc.unique(extract.column("CustomerID").drop_null()))
    half = split_at_a_duplicate(extract)
    data = jdbc_config(suite_config, postgres, tmp_path / "lake").model_dump(mode="json")
    data["sources"]["orders_db"].update(
        {
            "source_table": "public.sales_lines",
            "watermark_column": "Last Modified",
            "partition_column": "Line No",
            "columns": ENTITY_COLUMNS,
            "formats": {"invoice_date": "dd.MM.yyyy HH:mm"},
        }
    )
    # A rule on a column of the table, by its own name.
    rule = {"name": "customer_known", "type": "completeness", "column": "Customer ID", "threshold": 0.6}
    data["quality"]["tables"]["bronze/orders_db"] = {"rules": [rule]}
    config = validate_config(data)
    path = config.lakehouse.table_path

    load_export(postgres, extract.slice(0, half), dt.datetime(2026, 1, 1, 10))
    first = run_job("batch_layer", config, spark, context("run-1"))
    written = {f"{w.layer}/{w.table}": w.rows_written for w in first.writes}
    assert written["bronze/orders_db"] == half
    assert written["audit/bookmarks"] == 1

    load_export(postgres, extract.slice(half), dt.datetime(2026, 1, 2, 10))
    second = run_job("batch_layer", config, spark, context("run-2"))
    written = {f"{w.layer}/{w.table}": w.rows_written for w in second.writes}
    assert (written["bronze/orders_db"], written["audit/rejects"]) == (ROWS - half, 0)

    bronze = lakehouse.read(spark, path("bronze", "orders_db"))
    assert bronze.columns[:10] == ["Line No", *ENTITY_COLUMNS.values(), "Last Modified"]
    assert bronze.count() == ROWS
    assert bronze.select("Line No").distinct().count() == ROWS
    assert bronze.groupBy("_run_id").count().orderBy("_run_id").collect() == [("run-1", half), ("run-2", ROWS - half)]
    # Every row once in silver: exact duplicates collapse, across the two loads (the split is at one) as within them.
    lines = lakehouse.read(spark, path("silver", "order_lines"))
    assert distinct.num_rows < ROWS
    assert lines.count() == distinct.num_rows
    assert lines.select("line_id").distinct().count() == distinct.num_rows
    assert lines.agg(F.countDistinct("customer_id")).first()[0] == customers  # type: ignore[index]
    first_line = lines.orderBy("invoice_date", "line_id").select("invoice_no", "invoice_date").first()
    assert tuple(first_line) == ("536365", dt.datetime(2010, 12, 1, 8, 26))  # type: ignore[arg-type]

    marks = lakehouse.read(spark, path("audit", "bookmarks")).orderBy("high_water_mark")
    assert [(r["watermark_column"], r["high_water_mark"], r["rows_read"]) for r in marks.collect()] == [
        ("Last Modified", "2026-01-01T10:00:00", half),
        ("Last Modified", "2026-01-02T10:00:00", ROWS - half),
    ]
    results = lakehouse.read(spark, path("audit", "quality_results"))
    checked = results.where("`table` = 'bronze/orders_db' AND rule = 'customer_known'").orderBy("rows").collect()
    assert sorted((r["rows"], r["columns"]) for r in checked) == sorted(
        [(half, ["Customer ID"]), (ROWS - half, ["Customer ID"])]
    )

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
