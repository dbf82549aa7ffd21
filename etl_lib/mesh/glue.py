"""Registration of data products in the AWS Glue Data Catalog, and Lake Formation grants, through boto3."""

from __future__ import annotations

import logging
from typing import Any

from etl_lib.config import GlueCatalogConfig, ServicesConfig
from etl_lib.errors import ConfigError
from etl_lib.mesh.catalog import Publication, glue_database, table_name

log = logging.getLogger(__name__)

#: Lake Formation permissions a consumer permission stands for.
LAKE_FORMATION_PERMISSIONS = {"read": ["SELECT", "DESCRIBE"], "describe": ["DESCRIBE"]}


def client(glue: GlueCatalogConfig, services: ServicesConfig, service: str) -> Any:
    """A boto3 client of ``service`` (glue, lakeformation): AWS, or the local endpoint when so configured.

    Args:
        glue: the ``mesh.glue`` section (the region, whether to use the local endpoint).
        services: the ``services`` section; its ``aws`` endpoint serves when ``glue.local_endpoint`` is set.
        service: the boto3 service name: ``glue`` or ``lakeformation``.
    """
    import boto3

    if glue.local_endpoint:
        from etl_lib.io.clients import local_client

        return local_client(services.aws, service)
    return boto3.client(service, region_name=glue.region)


def _s3a_to_s3(location: str) -> str:
    return "s3://" + location.removeprefix("s3a://") if location.startswith("s3a://") else location


def table_input(publication: Publication) -> dict[str, Any]:
    """Glue ``TableInput`` of a product: an external Delta table at the product's location."""
    p = publication
    return {
        "Name": table_name(p.ref),
        "Description": p.product.description or f"{p.product.source}, published by {p.ref.domain}",
        "Owner": p.domain.owner,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "delta",
            "table_type": "DELTA",
            "spark.sql.sources.provider": "delta",
            "data_product": str(p.ref),
            "product_version": str(p.version),
            "source_table": p.product.source,
        },
        "StorageDescriptor": {
            "Location": _s3a_to_s3(p.location),
            "Columns": [{"Name": c["name"], "Type": c["type"]} for c in p.schema],
            "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
            "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
        },
    }


def register(publication: Publication, glue: GlueCatalogConfig, services: ServicesConfig) -> str:
    """Create or update the product's table in its domain's Glue database; returns ``database.table``.

    Args:
        publication: the publication (the product, its domain, location and schema).
        glue: the ``mesh.glue`` section (database prefix, region, endpoint).
        services: the ``services`` section, for the local endpoint.
    """
    catalog = client(glue, services, "glue")
    database = glue_database(glue.database_prefix, publication.ref.domain)
    try:
        catalog.get_database(Name=database)
    except catalog.exceptions.EntityNotFoundException:
        catalog.create_database(
            DatabaseInput={"Name": database, "Description": publication.domain.description or database}
        )
    table = table_input(publication)
    try:
        catalog.get_table(DatabaseName=database, Name=table["Name"])
        catalog.update_table(DatabaseName=database, TableInput=table)
    except catalog.exceptions.EntityNotFoundException:
        catalog.create_table(DatabaseName=database, TableInput=table)
    return f"{database}.{table['Name']}"


def grant(publication: Publication, glue: GlueCatalogConfig, services: ServicesConfig) -> int:
    """Grant each consumer of the domain its permissions on the product in Lake Formation; returns how many.

    Args:
        publication: the publication (the product and its domain's consumers).
        glue: the ``mesh.glue`` section (database prefix, consumers' principals, region, endpoint).
        services: the ``services`` section, for the local endpoint.

    Raises:
        ConfigError: if a consumer has no principal in ``mesh.glue.principals``.
    """
    lake_formation = client(glue, services, "lakeformation")
    resource = {
        "Table": {
            "DatabaseName": glue_database(glue.database_prefix, publication.ref.domain),
            "Name": table_name(publication.ref),
        }
    }
    granted = 0
    for consumer, permissions in sorted(publication.domain.consumers.items()):
        principal = glue.principals.get(consumer)
        if principal is None:
            raise ConfigError(f"mesh.glue.principals: no IAM principal for consumer {consumer!r}")
        wanted = sorted({p for permission in permissions for p in LAKE_FORMATION_PERMISSIONS[permission]})
        lake_formation.grant_permissions(
            Principal={"DataLakePrincipalIdentifier": principal}, Resource=resource, Permissions=wanted
        )
        granted += 1
    return granted


def granted_permissions(
    glue: GlueCatalogConfig, services: ServicesConfig, principal: str, database: str, table: str
) -> set[str]:
    """The Lake Formation permissions ``principal`` holds on ``database.table``.

    Args:
        glue: the ``mesh.glue`` section (region, endpoint).
        services: the ``services`` section, for the local endpoint.
        principal: the IAM principal's ARN.
        database: the Glue database.
        table: the table in ``database``.
    """
    lake_formation = client(glue, services, "lakeformation")
    found: set[str] = set()
    arguments: dict[str, Any] = {
        "Principal": {"DataLakePrincipalIdentifier": principal},
        "Resource": {"Table": {"DatabaseName": database, "Name": table}},
    }
    while True:
        page = lake_formation.list_permissions(**arguments)
        for entry in page.get("PrincipalResourcePermissions", []):
            found.update(entry.get("Permissions", []))
        token = page.get("NextToken")
        if not token:
            return found
        arguments["NextToken"] = token
