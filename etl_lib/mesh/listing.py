"""``etl-suite catalog``: the mesh's products as ``mesh/data_products`` lists them, read without Spark."""

from __future__ import annotations

import json
from typing import Any

from etl_lib.config import SuiteConfig
from etl_lib.errors import AccessDeniedError, UsageError
from etl_lib.mesh.access import check_access, resolve
from etl_lib.mesh.catalog import product_location


def latest_products(root: str, domain: str | None = None) -> list[dict[str, Any]]:
    """The newest catalog row of each product (of ``domain`` only, when given), by domain and product."""
    from etl_lib.io.portable import duckdb_query, is_table

    path = f"{root.rstrip('/')}/mesh/data_products"
    if not is_table(path):
        return []
    sql = """
        SELECT * EXCLUDE (_rank) FROM (
            SELECT *, row_number() OVER (PARTITION BY domain, product ORDER BY published_at DESC, version DESC) AS _rank
            FROM c WHERE ?::VARCHAR IS NULL OR domain = ?
        ) WHERE _rank = 1 ORDER BY domain, product
    """
    connection_rows = duckdb_query(sql, [domain, domain], c=path)
    names = [
        "domain",
        "product",
        "dataset",
        "location",
        "source",
        "source_version",
        "version",
        "description",
        "owner",
        "consumers",
        "schema_json",
        "row_count",
        "last_updated",
        "quality_score",
        "freshness_at",
        "is_fresh",
        "upstream",
        "model_versions",
        "contract_path",
        "glue_table",
        "run_id",
        "published_at",
    ]
    return [dict(zip(names, row, strict=True)) for row in connection_rows]


def render(products: list[dict[str, Any]], root: str) -> str:
    """A table for a terminal."""
    if not products:
        return f"no data products published under {root} (etl-suite run publish_products)"
    lines = [f"{'product':<36} {'owner':<28} {'rows':>10} {'quality':>7} {'fresh':>5}  updated"]
    for p in products:
        quality = "-" if p["quality_score"] is None else f"{p['quality_score']:.2f}"
        fresh = "-" if p["is_fresh"] is None else ("yes" if p["is_fresh"] else "NO")
        updated = str(p["last_updated"])[:19]
        name = f"{p['domain']}.{p['product']}"
        lines.append(f"{name:<36} {p['owner']:<28} {p['row_count']:>10,} {quality:>7} {fresh:>5}  {updated}")
    return "\n".join(lines)


def describe(config: SuiteConfig, name: str, consumer: str | None) -> str:
    """Everything the catalog says about one product (and whether ``consumer`` may read it)."""
    ref = resolve(config, name)
    found = [p for p in latest_products(config.lakehouse.root, ref.domain) if p["product"] == ref.product]
    if not found:
        raise UsageError(f"data product {ref} is declared but not published yet (etl-suite run publish_products)")
    entry = dict(found[0])
    entry["schema"] = json.loads(entry.pop("schema_json"))
    if consumer:
        try:
            check_access(config, ref, consumer, "read")
            entry["access"] = f"{consumer} may read"
        except AccessDeniedError as refused:
            entry["access"] = str(refused)
    return json.dumps(entry, indent=2, default=str)


def read_rows(config: SuiteConfig, name: str, consumer: str, limit: int) -> list[str]:
    """Up to ``limit`` rows of a product, as JSON lines, if ``consumer`` may read it.

    Args:
        config: the suite configuration (``mesh``, ``lakehouse``).
        name: the product, as ``domain.product``.
        consumer: the consumer reading, as the product's domain names it under ``consumers``.
        limit: the most rows returned.

    Raises:
        AccessDeniedError: if it may not.
    """
    from etl_lib.io.portable import duckdb_connection

    ref = resolve(config, name)
    check_access(config, ref, consumer, "read")
    location = product_location(config.mesh, ref, config.lakehouse.root).replace("'", "''")
    connection = duckdb_connection()
    try:
        cursor = connection.execute(f"SELECT * FROM delta_scan('{location}') LIMIT ?", [limit])  # noqa: S608
        names = [column[0] for column in cursor.description]
        return [json.dumps(dict(zip(names, row, strict=True)), default=str) for row in cursor.fetchall()]
    finally:
        connection.close()
