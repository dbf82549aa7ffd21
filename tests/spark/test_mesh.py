"""The data mesh: products published from the real batch layer's tables, catalogued, contracted, guarded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chispa import assert_df_equality
from open_data_contract_standard.model import OpenDataContractStandard
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.cli import main
from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import AccessDeniedError, JobFailedError
from etl_lib.io import lakehouse
from etl_lib.io.portable import duckdb_query
from etl_lib.jobs.publish_products import model_versions, register_in_spark_catalog
from etl_lib.mesh import catalog
from etl_lib.mesh.access import read_product
from etl_lib.mesh.catalog import ProductRef
from etl_lib.runtime.runner import run_job
from tests.conftest import copied_lake

CLOCK = dt.datetime(2011, 12, 10, 6, 0, tzinfo=dt.UTC)
PROJECT = Path(__file__).resolve().parents[2]
DOMAINS = {
    "sales": {
        "owner": "sales-analytics",
        "description": "Revenue of the store.",
        "consumers": {"finance": ["read"], "marketing": ["describe"]},
        "products": {
            "daily_revenue": {
                "source": "gold/daily_revenue",
                "description": "Revenue per day and country.",
                "freshness_column": "invoice_day",
                "max_age": "2 days",
            }
        },
    },
    "customer": {
        "owner": "customer-insights",
        "consumers": {"marketing": ["read"]},
        "products": {
            "customer_features": {
                "source": "gold/customer_features",
                "columns": ["customer_id", "customer_segment", "monetary"],
            }
        },
    },
}


def mesh_config(base: SuiteConfig, domains: dict[str, Any]) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["mesh"]["domains"] = domains
    return validate_config(data)


def publish(spark: SparkSession, config: SuiteConfig, run_id: str) -> Any:
    return run_job("publish_products", config, spark, RunContext.new("publish_products", lambda: CLOCK, lambda: run_id))


@pytest.fixture(scope="module")
def published(spark: SparkSession, retail_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    config = mesh_config(copied_lake(retail_lake, tmp_path_factory.mktemp("mesh") / "lake"), DOMAINS)
    result = publish(spark, config, "publish-1")
    return config, result


def catalog_rows(spark: SparkSession, config: SuiteConfig) -> dict[str, Any]:
    rows = lakehouse.read(spark, config.lakehouse.table_path("mesh", "data_products")).collect()
    return {f"{r['domain']}.{r['product']}": r for r in rows}


def test_products_are_published_as_delta_tables_with_their_catalog_row(spark: SparkSession, published: Any) -> None:
    config, result = published
    root = config.lakehouse.root
    assert {f"{w.layer}/{w.table}": w.rows_written for w in result.writes} == {
        "mesh/sales_daily_revenue": 1716,
        "mesh/customer_customer_features": 4372,
        "mesh/data_products": 2,
    }
    source = lakehouse.read(spark, config.lakehouse.table_path("gold", "daily_revenue"))
    product = lakehouse.read(spark, f"{root}/mesh/sales_daily_revenue")
    assert_df_equality(product, source, ignore_row_order=True, ignore_nullable=True)
    # Portable: DuckDB and the deltalake package read the same product.
    import deltalake

    assert duckdb_query("SELECT count(*) FROM p", p=f"{root}/mesh/sales_daily_revenue") == [(1716,)]
    assert deltalake.DeltaTable(f"{root}/mesh/customer_customer_features").to_pyarrow_table().num_rows == 4372

    row = catalog_rows(spark, config)["sales.daily_revenue"]
    results = lakehouse.read(spark, config.lakehouse.table_path("audit", "quality_results")).where(
        "table = 'gold/daily_revenue'"
    )
    newest = results.agg(F.max("evaluated_at")).first()[0]  # type: ignore[index]
    score = results.where(F.col("evaluated_at") == newest).agg(F.min("score")).first()[0]  # type: ignore[index]
    source_version = lakehouse.current_version(spark, config.lakehouse.table_path("gold", "daily_revenue"))
    assert (row["owner"], row["source"], row["source_version"], row["version"], row["row_count"]) == (
        "sales-analytics",
        "gold/daily_revenue",
        source_version,
        0,
        1716,
    )
    assert row["dataset"] == "mesh/sales_daily_revenue"
    assert row["quality_score"] == pytest.approx(score)
    assert row["consumers"] == {"finance": ["read"], "marketing": ["describe"]}
    assert (row["freshness_at"], row["is_fresh"]) == (dt.datetime(2011, 12, 9), True)
    assert [c["name"] for c in json.loads(row["schema_json"])] == source.columns
    # Upstream lineage reaches the extract through silver.
    upstream = [u.split("@")[0] for u in row["upstream"]]
    assert upstream[0] == "gold/daily_revenue"
    assert {"silver/order_lines", "bronze/online_retail"} <= set(upstream)
    assert row["model_versions"] == []
    features = catalog_rows(spark, config)["customer.customer_features"]
    assert [c["name"] for c in json.loads(features["schema_json"])] == ["customer_id", "customer_segment", "monetary"]


def test_each_product_has_a_data_contract(published: Any) -> None:
    config, _ = published
    folder = Path(config.lakehouse.root, "mesh", "_contracts")
    # Every contract written is one the Open Data Contract Standard's own schema and model accept.
    for path in sorted(folder.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        catalog.check_contract(document)
        OpenDataContractStandard.from_file(str(path))
    contract = yaml.safe_load((folder / "sales_daily_revenue.yaml").read_text())
    assert (contract["apiVersion"], contract["kind"], contract["id"], contract["domain"]) == (
        "v3.2.0",
        "DataContract",
        "sales.daily_revenue",
        "sales",
    )
    assert contract["servers"] == [
        {
            "server": "lakehouse",
            "type": "local",
            "format": "delta",
            "path": f"{config.lakehouse.root}/mesh/sales_daily_revenue",
        }
    ]
    [table] = contract["schema"]
    properties = {p["name"]: p for p in table["properties"]}
    assert properties["revenue"]["physicalType"].startswith("decimal")
    assert properties["revenue"]["logicalType"] == "number"
    # Silver's rules of the source, each as the suite configures it, under the dimension the standard names.
    rules = {q["name"]: q for q in table["quality"]}
    assert set(rules) == {"revenue_not_negative", "one_row_per_day_and_country"}
    assert {q["engine"] for q in rules.values()} == {"lakehouse-etl-suite"}
    assert rules["one_row_per_day_and_country"]["dimension"] == "uniqueness"
    configured = config.quality.tables["gold/daily_revenue"].rules
    assert [q["implementation"] for q in table["quality"]] == [
        r.model_dump(mode="json", exclude_none=True) for r in configured
    ]
    assert contract["team"] == {
        "name": "sales-analytics",
        "members": [{"username": "sales-analytics", "role": "owner"}],
    }
    assert contract["roles"] == [{"role": "finance", "access": "read"}, {"role": "marketing", "access": "describe"}]
    assert contract["slaProperties"] == [{"property": "freshness", "value": "2 days", "element": "invoice_day"}]


def test_a_contract_the_standard_refuses_is_named_with_its_faults() -> None:
    refused = {"apiVersion": "v3.2.0", "kind": "DataContract", "id": "x.y", "version": "1", "quality": []}
    with pytest.raises(JobFailedError, match=r"x\.y: not a contract .*\(top\): Additional properties .*'quality'"):
        catalog.check_contract(refused)
    wrong_dimension = {
        **{k: v for k, v in refused.items() if k != "quality"},
        "schema": [
            {"name": "t", "quality": [{"type": "custom", "engine": "e", "implementation": {}, "dimension": "range"}]}
        ],
    }
    with pytest.raises(JobFailedError, match=r"schema/0/quality/0/dimension: 'range' is not one of"):
        catalog.check_contract(wrong_dimension)


def test_products_are_in_the_spark_catalog(spark: SparkSession, published: Any) -> None:
    assert spark.sql("SELECT count(*) FROM sales.daily_revenue").first()[0] == 1716  # type: ignore[index]
    assert spark.sql("SELECT count(*) FROM customer.customer_features").first()[0] == 4372  # type: ignore[index]


def test_the_spark_catalog_follows_a_product_that_moved(spark: SparkSession, published: Any) -> None:
    config, _ = published
    elsewhere = config.lakehouse.table_path("gold", "customer_features")
    spark.sql("CREATE DATABASE IF NOT EXISTS sales")
    spark.sql("DROP TABLE IF EXISTS sales.daily_revenue")
    spark.sql(f"CREATE TABLE sales.daily_revenue USING DELTA LOCATION '{elsewhere}'")
    assert spark.sql("SELECT count(*) FROM sales.daily_revenue").first()[0] == 4372  # type: ignore[index]
    register_in_spark_catalog(
        spark, ProductRef("sales", "daily_revenue"), f"{config.lakehouse.root}/mesh/sales_daily_revenue"
    )
    assert spark.sql("SELECT count(*) FROM sales.daily_revenue").first()[0] == 1716  # type: ignore[index]
    # Only the catalog entry went: the table it named is still there.
    assert lakehouse.read(spark, elsewhere).count() == 4372


def test_catalog_list_filters_by_domain(published: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = published
    arguments = ["--conf", str(PROJECT / "conf" / "test.yaml"), "--set", f"lakehouse.root={config.lakehouse.root}"]
    assert main(["catalog", "list", *arguments]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == ["customer.customer_features", "sales.daily_revenue"]
    assert main(["catalog", "list", "--domain", "sales", *arguments]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["sales.daily_revenue"]
    assert lines[1].split()[1:4] == ["sales-analytics", "1,716", lines[1].split()[3]]


def test_reading_without_a_grant_is_refused(
    spark: SparkSession, published: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = published
    assert read_product(spark, config, "sales.daily_revenue", "finance").count() == 1716
    with pytest.raises(
        AccessDeniedError, match=r"consumer 'marketing' has no read grant on data product sales\.daily_revenue"
    ):
        read_product(spark, config, "sales.daily_revenue", "marketing")
    with pytest.raises(AccessDeniedError, match="consumer 'finance' has no read grant"):
        read_product(spark, config, "customer.customer_features", "finance")
    assert read_product(spark, config, "customer.customer_features", "marketing").columns == [
        "customer_id",
        "customer_segment",
        "monetary",
    ]
    # The command line says the same, and exits with its own code.
    base = ["--conf", str(PROJECT / "conf" / "test.yaml"), "--set", f"lakehouse.root={config.lakehouse.root}"]
    # (The configured sales domain grants as this test's does.)
    assert main(["catalog", "read", "sales.daily_revenue", "--as", "marketing", *base]) == 3
    assert "no read grant" in capsys.readouterr().err
    assert main(["catalog", "read", "sales.daily_revenue", "--as", "finance", "--limit", "2", *base]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2
    assert set(rows[0]) == set(lakehouse.read(spark, config.lakehouse.table_path("gold", "daily_revenue")).columns)


def test_a_product_whose_source_is_missing_fails_the_run_after_the_others(spark: SparkSession, published: Any) -> None:
    config, _ = published
    domains = json.loads(json.dumps(DOMAINS))
    domains["customer"]["products"]["churn_scores"] = {"source": "gold/churn_scores"}
    with pytest.raises(JobFailedError, match=r"1 of 3 data products not published: customer.churn_scores: its source"):
        publish(spark, mesh_config(config, domains), "publish-2")
    catalog = lakehouse.read(spark, config.lakehouse.table_path("mesh", "data_products"))
    assert sorted(r["product"] for r in catalog.where("run_id = 'publish-2'").collect()) == [
        "customer_features",
        "daily_revenue",
    ]


def test_model_versions_are_read_from_scored_rows(spark: SparkSession) -> None:
    frame = spark.createDataFrame(
        [("1", "customer_churn", "3", "purchase_anomaly", "7"), ("2", "customer_churn", "4", None, None)],
        "customer_id STRING, model_name STRING, model_version STRING, anomaly_model STRING, "
        "anomaly_model_version STRING",
    )
    assert model_versions(frame) == ["customer_churn:3", "customer_churn:4", "purchase_anomaly:7"]
