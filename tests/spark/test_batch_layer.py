"""The batch layer end to end: the full real extract, then smaller extracts for the finer properties."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import JobResult, RunContext
from etl_lib.errors import JobFailedError
from etl_lib.io import lakehouse
from etl_lib.io.portable import delta_rows, duckdb_checksum, duckdb_query
from etl_lib.runtime.runner import run_job
from tests.exports import ENTITY_COLUMNS, bundled_lines, write_csv, write_workbook
from tests.openlineage_types import check_run_event
from tests.retail import RETAIL_TABLES

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
PROCESS_DATE = dt.date(2011, 12, 10)


def context(run_id: str) -> RunContext:
    return RunContext.new("batch_layer", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: run_id)


def configured(base: SuiteConfig, root: Path, **changes: Any) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["run"]["process_date"] = str(PROCESS_DATE)
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return validate_config(data)


def rows_of(result: JobResult) -> dict[str, int]:
    return {f"{w.layer}/{w.table}": w.rows_written for w in result.writes}


@pytest.fixture(scope="module")
def full_run(retail_lake: dict[str, Any]) -> dict[str, Any]:
    """The batch layer on the whole bundled extract, run twice with the same process date (conftest)."""
    return retail_lake


def test_full_extract_lands_with_its_known_facts(spark: SparkSession, full_run: dict[str, Any]) -> None:
    config: SuiteConfig = full_run["config"]
    assert rows_of(full_run["first"]) == {
        "bronze/online_retail": 541_909,
        "silver/order_lines": 536_641,  # 541,909 landed less 5,268 exact duplicates
        "audit/rejects": 0,
        "silver/dim_products": 4_070,
        "silver/dim_customers": 4_388,
        "gold/customer_features": 4_372,
        "gold/daily_revenue": 1_716,
    }
    path = config.lakehouse.table_path
    bronze = lakehouse.read(spark, path("bronze", "online_retail"))
    facts = bronze.agg(F.sum("Quantity"), F.sum(F.col("InvoiceNo").startswith("C").cast("int"))).first()
    assert tuple(facts) == (5_176_450, 9_288)  # type: ignore[arg-type]

    lines = lakehouse.read(spark, path("silver", "order_lines"))
    summary = lines.agg(
        F.count("*").alias("lines"),
        F.countDistinct("line_id").alias("ids"),
        F.sum(F.col("is_cancellation").cast("int")).alias("cancellations"),
        F.sum((~F.col("is_product")).cast("int")).alias("non_products"),
        F.countDistinct("customer_id").alias("customers"),
        F.countDistinct("stock_code").alias("stock_codes"),
        F.sum((F.col("description") != F.trim("description")).cast("int")).alias("untrimmed"),
    ).first()
    assert summary is not None
    assert summary.asDict() == {
        "lines": 536_641,
        "ids": 536_641,
        "cancellations": 9_251,  # 9,288 in the extract, 37 of them exact duplicates
        "non_products": 2_989,
        "customers": 4_372,
        "stock_codes": 4_070,
        "untrimmed": 0,
    }
    net = lines.agg(F.sum("amount")).first()
    assert net is not None
    assert str(net[0]) == "9726006.954"  # sum(Quantity * UnitPrice) over the distinct extract rows

    customers = lakehouse.read(spark, path("silver", "dim_customers"))
    assert customers.where("is_current").count() == 4_372
    assert customers.groupBy("customer_id").count().where("count > 1").count() == 8  # 8 customers changed country


def test_second_run_of_the_same_date_writes_nothing_and_changes_nothing(
    spark: SparkSession, full_run: dict[str, Any]
) -> None:
    config: SuiteConfig = full_run["config"]
    assert set(rows_of(full_run["second"]).values()) == {0}
    for name, before in full_run["after_first"].items():
        path = config.lakehouse.table_path(*name.split("/"))  # type: ignore[arg-type]
        assert lakehouse.checksum(spark, path) == before, name
        assert duckdb_checksum(path) == full_run["by_duckdb"][name], name
        assert duckdb_checksum(path)[0] == before[0], name
        assert lakehouse.current_version(spark, path) == full_run["versions"][name], name


def test_other_engines_read_the_same_counts(spark: SparkSession, full_run: dict[str, Any]) -> None:
    config: SuiteConfig = full_run["config"]
    for layer, table in RETAIL_TABLES:
        path = config.lakehouse.table_path(layer, table)
        spark_rows = lakehouse.read(spark, path).count()
        assert delta_rows(path) == spark_rows, path
        assert duckdb_query("SELECT count(*) FROM t", t=path) == [(spark_rows,)], path


CSV_HEADER = "invoice,sku,text,qty,when,price,customer,nation\n"


def csv_source(landing: Path) -> dict[str, Any]:
    """A differently shaped extract of the same kind: a config change only."""
    return {
        "kind": "files",
        "format": "csv",
        "path": str(landing),
        "table": "erp_csv",
        "entity": "order_lines",
        "columns": {
            "invoice_no": "invoice",
            "stock_code": "sku",
            "description": "text",
            "quantity": "qty",
            "invoice_date": "when",
            "unit_price": "price",
            "customer_id": "customer",
            "country": "nation",
        },
        "formats": {"invoice_date": "dd/MM/yyyy HH:mm"},
    }


def test_a_csv_extract_with_its_own_names_rejects_bad_rows_and_adds_new_files_only(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "day1.csv").write_text(
        CSV_HEADER
        + "536365,85123A, WHITE HANGING HEART ,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
        + "536365,85123A, WHITE HANGING HEART ,6,01/12/2010 08:26,2.55,17850,United Kingdom\n"
        + "536366,22633,HAND WARMER,six,01/12/2010 08:28,1.85,17850,United Kingdom\n"
        + ",22632,HAND WARMER RED,6,01/12/2010 08:28,1.85,17850,United Kingdom\n"
    )
    config = configured(suite_config, tmp_path / "lake", sources={"erp_csv": csv_source(landing)})
    first = run_job("batch_layer", config, spark, context("run-1"))
    assert rows_of(first)["bronze/erp_csv"] == 4
    assert rows_of(first)["silver/order_lines"] == 1  # the duplicate collapses, two rows are rejected
    assert rows_of(first)["audit/rejects"] == 2

    rejects = lakehouse.read(spark, config.lakehouse.table_path("audit", "rejects"))
    reasons = sorted(
        (r["source"], [(x["rule"], x["column"], x["message"]) for x in r["reasons"]]) for r in rejects.collect()
    )
    assert reasons == [
        ("erp_csv", [("required", "invoice_no", "is missing")]),
        ("erp_csv", [("type", "quantity", 'cannot read {"qty":"six"} as int')]),
    ]
    # A rejected row keeps the extract row as it landed, so it can be mended and sent again.
    landed = sorted((json.loads(r["record"]) for r in rejects.collect()), key=lambda row: row["qty"])
    assert [(row.get("invoice"), row["sku"], row["qty"]) for row in landed] == [
        (None, "22632", "6"),
        ("536366", "22633", "six"),
    ]
    line = lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines")).first()
    assert line is not None
    assert (line["description"], line["quantity"], line["invoice_date"], str(line["unit_price"])) == (
        "WHITE HANGING HEART",
        6,
        dt.datetime(2010, 12, 1, 8, 26),
        "2.550",
    )

    (landing / "day2.csv").write_text(
        CSV_HEADER + "536367,84879,ASSORTED BIRD ORNAMENT,32,02/12/2010 09:00,1.69,13047,United Kingdom\n"
    )
    second = run_job("batch_layer", config, spark, context("run-2"))
    assert rows_of(second)["bronze/erp_csv"] == 1
    assert rows_of(second)["silver/order_lines"] == 1
    assert rows_of(second)["audit/rejects"] == 0
    assert rows_of(second)["gold/daily_revenue"] == 1  # a new day

    third = run_job("batch_layer", config, spark, context("run-3"))
    assert set(rows_of(third).values()) == {0}
    shutil.rmtree(landing)


@pytest.mark.parametrize(
    ("python_encoding", "source_options", "warmer"),
    [
        # A spreadsheet's "CSV UTF-8": a byte-order mark before the header, commas.
        ("utf-8-sig", {}, "HAND WARMER"),
        # An older export: Latin-1, semicolons, and a quote of its own.
        ("latin-1", {"encoding": "ISO-8859-1", "sep": ";", "quote": "'"}, "HAND WARMER"),
        # Windows' own code page: its curly quotes are bytes that Latin-1 reads as control characters.
        ("cp1252", {"encoding": "windows-1252"}, "HAND WARMER \u2018UNION JACK\u2019 \u20ac2"),
    ],
    ids=["utf8-bom", "latin1-semicolons", "windows-1252"],
)
def test_an_extract_keeps_its_own_column_names_in_bronze_for_every_reader(
    spark: SparkSession,
    suite_config: SuiteConfig,
    tmp_path: Path,
    python_encoding: str,
    source_options: dict[str, str],
    warmer: str,
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    sep, quote = source_options.get("sep", ","), source_options.get("quote", '"')
    lines = [
        [quote + name + quote for name in ENTITY_COLUMNS.values()],
        ["536365", "85123A", f"{quote}WHITE HANGING HEART, LARGE{quote}", "6", "01/12/2010 08:26", "2.55", "17850"],
        ["536366", "22633", warmer, "6", "01/12/2010 08:28", "1.85", ""],
    ]
    text = "".join(sep.join(line if len(line) == 8 else [*line, "United Kingdom"]) + "\n" for line in lines)
    (landing / "export.csv").write_bytes(text.encode(python_encoding))
    source = {**csv_source(landing), "table": "erp_export", "columns": ENTITY_COLUMNS, "options": source_options}
    # A rule on the extract's own column, by the name it has there.
    rules = {"rules": [{"name": "customer_known", "type": "completeness", "column": "Customer ID", "threshold": 0.5}]}
    config = configured(
        suite_config, tmp_path / "lake", sources={"erp_export": source}, quality__tables={"bronze/erp_export": rules}
    )
    result = run_job("batch_layer", config, spark, context("run-1"))
    assert rows_of(result)["bronze/erp_export"] == 2
    assert rows_of(result)["silver/order_lines"] == 2

    bronze = config.lakehouse.table_path("bronze", "erp_export")
    names = list(ENTITY_COLUMNS.values())
    assert lakehouse.read(spark, bronze).columns[: len(names)] == names
    from deltalake import DeltaTable

    assert DeltaTable(bronze).to_pyarrow_table().column_names[: len(names)] == names
    assert duckdb_query('SELECT "Customer ID", "Unit Price (£)", "Qté" FROM t ORDER BY 1', t=bronze) == [
        ("17850", "2.55", "6"),
        (None, "1.85", "6"),
    ]
    lines = lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines"))
    assert sorted(lines.select("description").collect()) == [(warmer,), ("WHITE HANGING HEART, LARGE",)]
    results = lakehouse.read(spark, config.lakehouse.table_path("audit", "quality_results"))
    rule = results.where("`table` = 'bronze/erp_export' AND rule = 'customer_known'").first()
    assert rule is not None
    assert (rule["passed"], rule["failing_rows"], rule["rows"], rule["columns"]) == (True, 1, 2, ["Customer ID"])


@pytest.mark.primary_line
def test_the_extract_exported_by_other_systems_gives_the_same_facts(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    """The whole extract in three exports of its months, each a configuration alone, through the batch layer.

    Renamed columns; text dates in two formats; a Latin-1 CSV with semicolons, a Windows-1252 CSV, and an
    ``.xlsx`` whose rows are on its second sheet under two title rows.
    """
    lines = bundled_lines()
    moment = lines["Invoice Date"]
    parts = {
        "latin1": lines[moment < "2011-07-01"],
        "cp1252": lines[(moment >= "2011-07-01") & (moment < "2011-12-01")],
        "workbook": lines[moment >= "2011-12-01"],
    }
    folders = {name: tmp_path / name for name in parts}
    for folder in folders.values():
        folder.mkdir()
    write_csv(parts["latin1"], folders["latin1"] / "2011-h1.csv", "%d/%m/%Y %H:%M", "latin-1", sep=";")
    write_csv(parts["cp1252"], folders["cp1252"] / "2011-q3.csv", "us", "cp1252")
    write_workbook(parts["workbook"], folders["workbook"] / "2011-12.xlsx", title_rows=[["Sales lines"], []])

    def source(name: str, **settings: Any) -> dict[str, Any]:
        return {
            "kind": "files",
            "path": str(folders[name]),
            "table": f"erp_{name}",
            "entity": "order_lines",
            "columns": ENTITY_COLUMNS,
            **settings,
        }

    # Quotes inside a quoted value are doubled (RFC 4180), not escaped with a backslash as Spark expects.
    csv = {"escape": '"'}
    sources = {
        "erp_latin1": source(
            "latin1",
            format="csv",
            options={**csv, "encoding": "ISO-8859-1", "sep": ";"},
            formats={"invoice_date": "dd/MM/yyyy HH:mm"},
        ),
        "erp_cp1252": source(
            "cp1252",
            format="csv",
            options={**csv, "encoding": "windows-1252"},
            formats={"invoice_date": "M/d/yyyy h:mm a"},
        ),
        "erp_workbook": source("workbook", format="xlsx", sheet="Transactions", header_row=3),
    }
    config = configured(suite_config, tmp_path / "lake", sources=sources)
    written = rows_of(run_job("batch_layer", config, spark, context("run-1")))
    assert {table: written[table] for table in ("bronze/erp_latin1", "bronze/erp_cp1252", "bronze/erp_workbook")} == {
        "bronze/erp_latin1": 245_903,
        "bronze/erp_cp1252": 270_481,
        "bronze/erp_workbook": 25_525,
    }
    assert {table: written[table] for table in ("silver/order_lines", "audit/rejects", "silver/dim_customers")} == {
        "silver/order_lines": 536_641,  # the same 5,268 exact duplicates found
        "audit/rejects": 0,
        "silver/dim_customers": 4_388,
    }
    lines_read = lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines"))
    summary = lines_read.agg(
        F.countDistinct("line_id").alias("ids"),
        F.sum(F.col("is_cancellation").cast("int")).alias("cancellations"),
        F.countDistinct("customer_id").alias("customers"),
        F.sum("quantity").alias("quantity"),
        F.sum("amount").cast("string").alias("revenue"),
        F.sum(F.col("description").contains("£").cast("int")).alias("pound_signs"),
    ).first()
    assert summary is not None
    assert summary.asDict() == {
        "ids": 536_641,
        "cancellations": 9_251,
        "customers": 4_372,
        "quantity": 5_162_502,
        "revenue": "9726006.954",
        "pound_signs": 32,
    }


def test_a_failing_source_fails_the_run_and_spares_the_other(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    good = tmp_path / "good"
    good.mkdir()
    pq.write_table(pq.read_table(DATA).slice(0, 100), good / "part.parquet")
    sources = {
        "online_retail": {**suite_config.sources["online_retail"].model_dump(mode="json"), "path": str(good)},
        "erp_csv": csv_source(tmp_path / "never-created"),
    }
    config = configured(suite_config, tmp_path / "lake", sources=sources)
    with pytest.raises(JobFailedError) as caught:
        run_job("batch_layer", config, spark, context("run-1"))
    message = str(caught.value)
    assert message.startswith("6 of 7 tasks did not succeed:\n  bronze/erp_csv: failed: AnalysisException")
    assert "  silver/order_lines: skipped: not run: bronze/erp_csv did not succeed" in message
    assert delta_rows(config.lakehouse.table_path("bronze", "online_retail")) == 100


FACTS = {  # ../data/README.md: what the extract is known to hold
    "customer_known": 135_080,
    "description_present": 1_454,
    "not_cancelled": 9_288,
    "no_write_off": 1_336,
    "product_code": 2_995,
    "price_not_zero": 2_515,
    "price_not_negative": 2,
    "no_exact_duplicates": 5_268,
}


def test_quality_rules_on_the_real_extract_count_the_known_facts(full_run: dict[str, Any]) -> None:
    from etl_lib.io.portable import table_rows

    config: SuiteConfig = full_run["config"]
    rows = table_rows(config.lakehouse.table_path("audit", "quality_results"), "run_id = 'run-1'")
    bronze = {r["rule"]: r for r in rows if r["table"] == "bronze/online_retail"}
    assert {rule: bronze[rule]["failing_rows"] for rule in FACTS} == FACTS
    # The outliers by range, counted independently by DuckDB on the bundled file.
    [(quantity, price)] = duckdb_query(
        f"SELECT count(*) FILTER (WHERE abs(Quantity) > 10000), count(*) FILTER (WHERE UnitPrice > 10000) "
        f"FROM read_parquet('{DATA}')"
    )
    assert (bronze["quantity_plausible"]["failing_rows"], bronze["price_plausible"]["failing_rows"]) == (
        quantity,
        price,
    )
    assert all(r["passed"] for r in rows)
    assert {r["table"] for r in rows} == {
        "bronze/online_retail",
        "silver/order_lines",
        "gold/customer_features",
        "gold/daily_revenue",
    }
    flagged = duckdb_query(
        "SELECT count(*) FROM t WHERE len(_dq_failures) > 0 AND list_contains("
        "list_transform(_dq_failures, f -> f.rule), 'price_not_negative')",
        t=config.lakehouse.table_path("silver", "order_lines"),
    )
    assert flagged == [(2,)]  # the two "Adjust bad debt" lines carry the rule they failed


def test_lineage_of_a_gold_table_from_the_command_line(
    full_run: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from etl_lib.cli import main

    config: SuiteConfig = full_run["config"]
    arguments = ["--conf", str(PROJECT / "conf" / "test.yaml"), "--set", f"lakehouse.root={config.lakehouse.root}"]
    assert main(["lineage", "upstream", "gold/customer_features", *arguments]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        "gold/customer_features v1  (batch_layer: gold/customer_features, 4,372 rows, run run-1)"
    )
    assert lines[1].startswith("<- silver/order_lines v1  (batch_layer: silver/order_lines, 536,641 rows, run run-1)")
    assert lines[2].startswith(
        "   <- bronze/online_retail v0  (batch_layer: bronze/online_retail, 541,909 rows, run run-1)"
    )
    assert lines[3] == f"      <- files:{DATA.parent}"
    assert main(["lineage", "downstream", "bronze/online_retail", *arguments]) == 0
    downstream = capsys.readouterr().out
    for table in ("silver/order_lines", "silver/dim_products", "silver/dim_customers", "gold/daily_revenue"):
        assert f"-> {table} v1" in downstream


def test_every_run_is_recorded_with_its_config_redacted(spark: SparkSession, full_run: dict[str, Any]) -> None:
    from etl_lib.io.portable import table_rows

    config: SuiteConfig = full_run["config"]
    runs = table_rows(config.lakehouse.table_path("audit", "etl_runs"))
    by_run = {(r["run_id"], r["status"]) for r in runs}
    assert {("run-1", "running"), ("run-1", "succeeded"), ("run-2", "running"), ("run-2", "succeeded")} <= by_run
    final = next(r for r in runs if (r["run_id"], r["status"]) == ("run-1", "succeeded"))
    assert (final["job"], final["platform"], final["spark_version"]) == ("batch_layer", "local", spark.version)
    assert final["ended_at"] >= final["started_at"]
    recorded = json.loads(final["config"])
    assert recorded["lakehouse"]["root"] == config.lakehouse.root
    assert recorded["services"]["postgres"]["password_env"] == "ETL_SUITE_PG_PASSWORD"
    assert dict(final["metrics"])["process_date"] == "2011-12-10"


def test_openlineage_events_are_emitted_once_per_run_and_valid(full_run: dict[str, Any]) -> None:
    config: SuiteConfig = full_run["config"]
    lines = (Path(config.lakehouse.root) / "_lineage" / "openlineage.jsonl").read_text().splitlines()
    emitted = [json.loads(line) for line in lines]
    for event in emitted:
        check_run_event(event)  # read back into the OpenLineage client's own types
    assert [e["eventType"] for e in emitted] == ["START", "COMPLETE", "START", "COMPLETE"]
    complete = emitted[1]
    outputs = {o["name"].rsplit("/", 2)[-2] + "/" + o["name"].rsplit("/", 1)[-1]: o for o in complete["outputs"]}
    assert outputs["gold/customer_features"]["outputFacets"]["outputStatistics"]["rowCount"] == 4_372
    assert outputs["silver/order_lines"]["facets"]["version"]["datasetVersion"] == "1"
    assert any(i["name"].endswith("data/online_retail") for i in complete["inputs"])
