"""Data products registered in the Glue Data Catalog, with Lake Formation grants, on the local AWS endpoint."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import SparkSession

from etl_lib.config import validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import AccessDeniedError
from etl_lib.io.clients import local_client
from etl_lib.mesh.access import read_product
from etl_lib.runtime.runner import run_job
from etl_lib.services.aws import AwsService
from tests.conftest import copied_lake

# A test of the suite's own logic, on the primary line: the catalog calls are boto3's; the products themselves are
# published on both lines in spark/test_mesh (see the primary_line marker).
pytestmark = pytest.mark.primary_line

FINANCE = "arn:aws:iam::123456789012:role/finance-analysts"
MARKETING = "arn:aws:iam::123456789012:role/marketing"


@pytest.fixture(scope="module")
def registered(
    spark: SparkSession, aws: AwsService, retail_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    data = copied_lake(retail_lake, tmp_path_factory.mktemp("glue") / "lake").model_dump(mode="json")
    data["mesh"]["domains"] = {
        "sales": {
            "owner": "sales-analytics",
            "description": "Revenue of the store.",
            "consumers": {"finance": ["read"], "marketing": ["describe"]},
            "products": {"daily_revenue": {"source": "gold/daily_revenue"}},
        }
    }
    data["mesh"]["glue"] = {
        "enabled": True,
        "database_prefix": "mesh_",
        "lake_formation": True,
        "local_endpoint": True,
        "principals": {"finance": FINANCE, "marketing": MARKETING},
    }
    config = validate_config(data)
    context = RunContext.new("publish_products", lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), lambda: "glue-1")
    run_job("publish_products", config, spark, context)
    return config


def test_a_product_is_a_glue_table_in_its_domains_database(aws: AwsService, registered: Any) -> None:
    config = registered
    glue = local_client(config.services.aws, "glue")
    table = glue.get_table(DatabaseName="mesh_sales", Name="sales_daily_revenue")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"{config.lakehouse.root}/mesh/sales_daily_revenue"
    assert (table["TableType"], table["Parameters"]["table_type"], table["Parameters"]["data_product"]) == (
        "EXTERNAL_TABLE",
        "DELTA",
        "sales.daily_revenue",
    )
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["invoice_day"] == "date"
    assert columns["revenue"].startswith("decimal(")
    assert glue.get_database(Name="mesh_sales")["Database"]["Description"] == "Revenue of the store."


def test_lake_formation_grants_follow_the_domains_consumers(aws: AwsService, registered: Any) -> None:
    lake_formation = local_client(registered.services.aws, "lakeformation")
    resource = {"Table": {"DatabaseName": "mesh_sales", "Name": "sales_daily_revenue"}}

    def held(principal: str) -> set[str]:
        page = lake_formation.list_permissions(Principal={"DataLakePrincipalIdentifier": principal}, Resource=resource)
        return {p for entry in page["PrincipalResourcePermissions"] for p in entry["Permissions"]}

    assert held(FINANCE) == {"SELECT", "DESCRIBE"}
    assert held(MARKETING) == {"DESCRIBE"}


def test_access_needs_the_grant_in_config_and_in_lake_formation(
    spark: SparkSession, aws: AwsService, registered: Any
) -> None:
    config = registered
    assert read_product(spark, config, "sales.daily_revenue", "finance").count() == 1716
    with pytest.raises(AccessDeniedError, match="no read grant"):
        read_product(spark, config, "sales.daily_revenue", "marketing")
    # Revoked in Lake Formation (by an administrator, outside the suite): refused although config grants it.
    local_client(config.services.aws, "lakeformation").revoke_permissions(
        Principal={"DataLakePrincipalIdentifier": FINANCE},
        Resource={"Table": {"DatabaseName": "mesh_sales", "Name": "sales_daily_revenue"}},
        Permissions=["SELECT"],
    )
    with pytest.raises(
        AccessDeniedError, match=r"lacks Lake Formation permission SELECT on mesh_sales\.sales_daily_revenue"
    ):
        read_product(spark, config, "sales.daily_revenue", "finance")
