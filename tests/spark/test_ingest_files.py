from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig
from etl_lib.core.run import RunContext
from etl_lib.errors import ExtractError
from etl_lib.io.portable import delta_rows, duckdb_query
from etl_lib.runtime.runner import run_job
from tests.exports import ENTITY_COLUMNS, bundled_lines, write_workbook

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


def workbook_source(config: SuiteConfig, landing: Path, **settings: Any) -> SuiteConfig:
    from etl_lib.config import FileSourceConfig

    source = FileSourceConfig(
        kind="files", format="xlsx", path=str(landing), table="erp_workbook", columns=ENTITY_COLUMNS, **settings
    )
    return config.model_copy(update={"sources": {"erp_workbook": source}})


def test_workbooks_land_one_sheet_under_its_own_names_and_new_files_only(
    spark: SparkSession, lake: SuiteConfig, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = bundled_lines()
    # An export's workbook: a notes sheet first, two title rows above the header of the sheet that holds the rows.
    write_workbook(lines.iloc[:300], landing / "2010-12-01.xlsx", title_rows=[["Sales lines"], []])
    config = workbook_source(lake, landing, sheet="Transactions", header_row=3)

    first = run_job("ingest_files", config, spark, context("run-1"))
    # Version 0 creates the table mapping its columns by name (their names have spaces), version 1 appends.
    assert [(w.rows_written, w.version) for w in first.writes] == [(300, 1)]
    # A later export with its columns in another order and one of them left out: matched by name.
    later = lines.iloc[300:500].drop(columns=["Country"])
    write_workbook(later[list(reversed(later.columns))], landing / "2010-12-02.xlsx", title_rows=[["Sales"], []])
    second = run_job("ingest_files", config, spark, context("run-2"))
    assert [(w.rows_written, w.version) for w in second.writes] == [(200, 2)]
    third = run_job("ingest_files", config, spark, context("run-3"))
    assert [(w.rows_written, w.version) for w in third.writes] == [(0, 2)]

    path = first.writes[0].path
    bronze = spark.read.format("delta").load(path)
    names = list(ENTITY_COLUMNS.values())
    assert bronze.dtypes[: len(names)] == [(name, "string") for name in names]
    assert bronze.columns[len(names) :] == ["_source", "_source_object", "_ingested_at", "_run_id"]
    from deltalake import DeltaTable

    assert DeltaTable(path).to_pyarrow_table().column_names[: len(names)] == names
    # Every cell as the text the sheet shows: dates in ISO 8601, whole numbers without a decimal point.
    expected = lines.iloc[:500].astype(object).where(lines.iloc[:500].notna(), None)
    expected["Invoice Date"] = expected["Invoice Date"].map(lambda moment: moment.isoformat(sep=" "))
    for column in ("Qté", "Unit Price (£)", "Customer ID"):
        expected[column] = expected[column].map(lambda value: None if value is None else format(value, "g"))
    expected.loc[300:, "Country"] = None
    landed = duckdb_query(f"SELECT {', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)}, _source_object FROM t", t=path)
    assert sorted(row[:-1] for row in landed) == sorted(expected.itertuples(index=False, name=None))
    per_file = {(Path(row[-1]).name) for row in landed}
    assert per_file == {"2010-12-01.xlsx", "2010-12-02.xlsx"}
    shutil.rmtree(landing)


def test_a_workbook_without_the_named_sheet_fails_the_run_naming_it(
    spark: SparkSession, lake: SuiteConfig, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    write_workbook(bundled_lines().iloc[:10], landing / "export.xlsx", sheet="Sheet1")
    config = workbook_source(lake, landing, sheet="Transactions")
    with pytest.raises(ExtractError, match=r"export\.xlsx: no sheet 'Transactions' \(it has 'About', 'Sheet1'\)$"):
        run_job("ingest_files", config, spark, context("run-1"))
