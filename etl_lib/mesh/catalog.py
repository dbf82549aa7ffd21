"""What the catalog records about a data product, and its data contract, from plain values (no I/O)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from etl_lib.config import DomainConfig, MeshConfig, ProductConfig
from etl_lib.errors import JobFailedError

#: ``mesh/data_products``: one row per publication of a product.
CATALOG_SCHEMA = (
    "domain STRING, product STRING, dataset STRING, location STRING, source STRING, source_version BIGINT, "
    "version BIGINT, description STRING, owner STRING, consumers MAP<STRING, ARRAY<STRING>>, schema_json STRING, "
    "row_count BIGINT, last_updated TIMESTAMP, quality_score DOUBLE, freshness_at TIMESTAMP, is_fresh BOOLEAN, "
    "upstream ARRAY<STRING>, model_versions ARRAY<STRING>, contract_path STRING, glue_table STRING, "
    "run_id STRING, published_at TIMESTAMP"
)
#: The contract format the files follow (Open Data Contract Standard).
CONTRACT_API_VERSION = "v3.2.0"
#: The Open Data Contract Standard's quality dimension of each of the suite's rule types.
RULE_DIMENSIONS = {
    "completeness": "completeness",
    "uniqueness": "uniqueness",
    "validity": "conformity",
    "range": "conformity",
    "allowed_values": "conformity",
    "expression": "consistency",
    "row_count": "coverage",
    "freshness": "timeliness",
}
#: The engine a contract names for the suite's own rules (ODCS ``custom`` quality checks).
QUALITY_ENGINE = "lakehouse-etl-suite"


@dataclass(frozen=True)
class ProductRef:
    """``domain.product``, as users name a product."""

    domain: str
    product: str

    @classmethod
    def parse(cls, text: str) -> ProductRef:
        """``"sales.daily_revenue"`` as a reference.

        Raises:
            ValueError: if ``text`` is not ``domain.product``.
        """
        domain, dot, product = text.partition(".")
        if not dot or not domain or not product or "." in product:
            raise ValueError(f"{text!r} is not a product name like 'domain.product'")
        return cls(domain, product)

    def __str__(self) -> str:
        return f"{self.domain}.{self.product}"


def table_name(ref: ProductRef) -> str:
    """The product table's name in its domain's location (and in the ``mesh`` layer by default)."""
    return f"{ref.domain}_{ref.product}"


def domain_location(domain: DomainConfig, lakehouse_root: str) -> str:
    """Where the domain's product tables live."""
    return (domain.location or f"{lakehouse_root.rstrip('/')}/mesh").rstrip("/")


def product_location(mesh: MeshConfig, ref: ProductRef, lakehouse_root: str) -> str:
    """The product's Delta table.

    Args:
        mesh: the ``mesh`` section; the product's domain is configured there.
        ref: the product.
        lakehouse_root: ``lakehouse.root``, under whose ``mesh`` folder a domain without a location keeps its tables.
    """
    return f"{domain_location(mesh.domains[ref.domain], lakehouse_root)}/{table_name(ref)}"


def glue_database(prefix: str, domain: str) -> str:
    """The Glue database that holds a domain's products."""
    return f"{prefix}{domain}"


@dataclass
class Publication:
    """What one publication of a product found out, for its catalog row and its contract."""

    ref: ProductRef
    product: ProductConfig
    domain: DomainConfig
    location: str
    version: int
    source_version: int | None
    schema: list[dict[str, Any]]
    row_count: int
    last_updated: dt.datetime
    quality_score: float | None
    quality_rules: list[dict[str, Any]] = field(default_factory=list)
    freshness_at: dt.datetime | None = None
    is_fresh: bool | None = None
    upstream: list[str] = field(default_factory=list)
    model_versions: list[str] = field(default_factory=list)
    contract_path: str = ""
    glue_table: str | None = None


def catalog_row(publication: Publication, run_id: str, published_at: dt.datetime, root: str) -> dict[str, Any]:
    """The ``mesh/data_products`` row of a publication.

    Args:
        publication: what the publication found out.
        run_id: the publishing run.
        published_at: when it published (the run's time).
        root: ``lakehouse.root``; the row's ``dataset`` is the product's location relative to it (the whole
            location when it lies elsewhere).
    """
    p = publication
    prefix = root.rstrip("/") + "/"
    dataset = p.location[len(prefix) :] if p.location.startswith(prefix) else p.location
    return {
        "domain": p.ref.domain,
        "product": p.ref.product,
        "dataset": dataset,
        "location": p.location,
        "source": p.product.source,
        "source_version": p.source_version,
        "version": p.version,
        "description": p.product.description,
        "owner": p.domain.owner,
        "consumers": {name: list(perms) for name, perms in p.domain.consumers.items()},
        "schema_json": json.dumps(p.schema),
        "row_count": p.row_count,
        "last_updated": p.last_updated,
        "quality_score": p.quality_score,
        "freshness_at": p.freshness_at,
        "is_fresh": p.is_fresh,
        "upstream": p.upstream,
        "model_versions": p.model_versions,
        "contract_path": p.contract_path,
        "glue_table": p.glue_table,
        "run_id": run_id,
        "published_at": published_at,
    }


def contract(publication: Publication, server_type: str) -> dict[str, Any]:
    """The product's data contract, as the Open Data Contract Standard (v3.2.0) has it (see :func:`check_contract`).

    Silver's rules of the product's source are its quality checks, each a ``custom`` check of this suite's engine
    with the rule as the suite configures it (the share of rows that must pass is its ``threshold``).
    """
    p = publication
    properties = [
        {
            "name": column["name"],
            "physicalType": column["type"],
            "logicalType": _logical_type(column["type"]),
            "required": not column["nullable"],
        }
        for column in p.schema
    ]
    quality = [_quality_check(rule) for rule in p.quality_rules]
    table: dict[str, Any] = {
        "name": p.ref.product,
        "physicalName": table_name(p.ref),
        "logicalType": "object",
        "physicalType": "table",
        "properties": properties,
    }
    if quality:
        table["quality"] = quality
    # An S3 server names its data by an s3:// URL (the suite's tables may be on s3a://, Hadoop's name for the same).
    where = {"location": "s3://" + p.location.split("://", 1)[1]} if server_type == "s3" else {"path": p.location}
    document: dict[str, Any] = {
        "apiVersion": CONTRACT_API_VERSION,
        "kind": "DataContract",
        "id": f"{p.ref.domain}.{p.ref.product}",
        "name": p.ref.product,
        "version": p.product.version,
        "status": "active",
        "domain": p.ref.domain,
        "dataProduct": str(p.ref),
        "description": {"purpose": p.product.description or f"{p.product.source}, published by {p.ref.domain}"},
        "team": {"name": p.domain.owner, "members": [{"username": p.domain.owner, "role": "owner"}]},
        "roles": [
            {"role": consumer, "access": "read" if "read" in perms else "describe"}
            for consumer, perms in sorted(p.domain.consumers.items())
        ],
        "servers": [{"server": "lakehouse", "type": server_type, "format": "delta", **where}],
        "schema": [table],
        "customProperties": [
            {"property": "sourceTable", "value": p.product.source},
            {"property": "upstream", "value": p.upstream},
            {"property": "modelVersions", "value": p.model_versions},
        ],
    }
    if p.product.max_age and p.product.freshness_column:
        document["slaProperties"] = [
            {"property": "freshness", "value": p.product.max_age, "element": p.product.freshness_column}
        ]
    return document


def _quality_check(rule: dict[str, Any]) -> dict[str, Any]:
    """A silver rule as a contract's quality check: a ``custom`` check of this suite's engine, the rule as set."""
    return {
        "name": rule["name"],
        "type": "custom",
        "engine": QUALITY_ENGINE,
        "implementation": rule,
        "description": rule.get("description") or rule["name"],
        "dimension": RULE_DIMENSIONS[rule["type"]],
        "severity": rule["severity"],
    }


def check_contract(document: dict[str, Any]) -> None:
    """Check a contract against the Open Data Contract Standard's JSON schema, then its model.

    Both come with the standard's own package (``open-data-contract-standard``).

    Raises:
        JobFailedError: naming every place the standard rejects.
    """
    import importlib.resources

    import jsonschema
    from open_data_contract_standard.model import OpenDataContractStandard

    schema = json.loads(importlib.resources.files("open_data_contract_standard").joinpath("schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    where = document.get("id", "a data contract")
    if errors:
        found = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors)
        raise JobFailedError(f"{where}: not a contract the Open Data Contract Standard accepts: {found}")
    try:
        OpenDataContractStandard.model_validate(document)
    except ValueError as refused:
        raise JobFailedError(f"{where}: the Open Data Contract Standard's model refuses it: {refused}") from None


def _logical_type(physical: str) -> str:
    lowered = physical.lower()
    if lowered.startswith(("decimal", "double", "float")):
        return "number"
    if lowered in ("int", "bigint", "smallint", "tinyint"):
        return "integer"
    if lowered in ("timestamp", "timestamp_ntz", "date"):
        return "date"
    if lowered == "boolean":
        return "boolean"
    if lowered.startswith(("array", "map", "struct")):
        return "array" if lowered.startswith("array") else "object"
    return "string"
