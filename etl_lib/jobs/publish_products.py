"""Job ``publish_products``: each domain's data products published, catalogued, contracted and registered.

For every product of every domain in ``mesh.domains``: its source table is copied, as of its current
version, into the domain's location; the product's catalog row goes to ``mesh/data_products`` (schema, row
count, last update, quality score from ``audit/quality_results``, freshness, upstream lineage from
``audit/lineage_events``, owner, consumers, model versions); its data contract is written beside the table;
it is registered in the Spark catalog (database per domain) and, when configured, in the Glue Data Catalog
with Lake Formation grants.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import ProductConfig, SuiteConfig, interval, is_uri
from etl_lib.core.run import JobResult, RunContext, TableWrite, run_metadata
from etl_lib.errors import ConfigError, EtlSuiteError, JobFailedError, explain
from etl_lib.io import lakehouse
from etl_lib.lineage.query import Node, load_events, upstream
from etl_lib.mesh import catalog
from etl_lib.mesh.catalog import ProductRef, Publication
from etl_lib.runtime.dag import Task, run_tasks

log = logging.getLogger(__name__)


class SourceMissingError(ConfigError):
    """A product's source table has not been written yet."""


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def quality_score(spark: SparkSession, config: SuiteConfig, source: str) -> float | None:
    """The score of the newest quality evaluation of ``source`` (None if it was never checked)."""
    path = config.lakehouse.table_path("audit", "quality_results")
    if not lakehouse.is_delta_table(spark, path):
        return None
    results = lakehouse.read(spark, path).where(F.col("table") == source)
    newest = results.agg(F.max("evaluated_at")).first()
    if newest is None or newest[0] is None:
        return None
    row = results.where(F.col("evaluated_at") == newest[0]).agg(F.min("score")).first()
    return None if row is None or row[0] is None else round(float(row[0]), 4)


def flatten(node: Node) -> list[str]:
    """Every dataset ``node`` came from, as ``dataset@version``, nearest first, each once."""
    found: list[str] = []
    queue = list(node.children)
    while queue:
        current = queue.pop(0)
        label = current.dataset if current.version is None else f"{current.dataset}@{current.version}"
        if label not in found:
            found.append(label)
        queue.extend(current.children)
    return found


def model_versions(frame: DataFrame) -> list[str]:
    """``model:version`` of every model whose scores the frame carries.

    A column ``<prefix>model_version`` pairs with ``<prefix>model_name`` or ``<prefix>model`` for the name.
    """
    pairs = []
    for column in frame.columns:
        if not column.endswith("model_version"):
            continue
        prefix = column.removesuffix("model_version")
        names = [n for n in (f"{prefix}model_name", f"{prefix}model") if n in frame.columns]
        model = F.col(names[0]) if names else F.lit(column.removesuffix("_version"))
        pairs.append(F.when(F.col(column).isNotNull(), F.concat_ws(":", model, F.col(column))))
    if not pairs:
        return []
    rows = frame.select(F.explode(F.array(*pairs)).alias("m")).where(F.col("m").isNotNull()).distinct().collect()
    return sorted(r["m"] for r in rows)


def write_text(location: str, text: str) -> None:
    """Write a small text file to a local path or an ``s3://`` location."""
    if is_uri(location):
        if not location.startswith(("s3://", "s3a://")):
            raise ConfigError(f"cannot write a data contract to {location}: local paths and s3:// only")
        import boto3

        bucket, _, key = location.split("://", 1)[1].partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=text.encode())
        return
    Path(location).parent.mkdir(parents=True, exist_ok=True)
    Path(location).write_text(text, encoding="utf-8")


def _same_location(left: str, right: str) -> bool:
    def normal(location: str) -> str:
        return location.removeprefix("file://").removeprefix("file:").rstrip("/")

    return normal(left) == normal(right)


def register_in_spark_catalog(spark: SparkSession, ref: ProductRef, location: str) -> None:
    """``domain.product`` in the session's catalog, as an external Delta table at ``location``.

    A table of that name at another location (the product moved, or another lakehouse registered it) is
    dropped from the catalog first; being external, its files stay where they are.
    """
    name = f"`{ref.domain}`.`{ref.product}`"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{ref.domain}`")
    if spark.catalog.tableExists(f"{ref.domain}.{ref.product}"):
        detail = spark.sql(f"DESCRIBE DETAIL {name}").first()
        if detail is None or not _same_location(str(detail["location"]), location):
            spark.sql(f"DROP TABLE {name}")
    escaped = location.replace("\\", "\\\\").replace("'", "\\'")
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} USING DELTA LOCATION '{escaped}'")


def _freshness(
    published: DataFrame, ref: ProductRef, product: ProductConfig, run_time: dt.datetime
) -> tuple[dt.datetime | None, bool | None]:
    """The newest time of the product's freshness column, and whether it is within the product's ``max_age``."""
    if not product.freshness_column:
        return None, None
    if product.freshness_column not in published.columns:
        raise ConfigError(f"data product {ref}: freshness_column {product.freshness_column!r} is not a column")
    newest = published.agg(F.max(product.freshness_column).cast("timestamp")).first()
    freshness_at = _utc(newest[0]) if newest else None
    if product.max_age and freshness_at is not None:
        return freshness_at, run_time - freshness_at <= interval(product.max_age)
    return freshness_at, None


def _register_in_glue(publication: Publication, config: SuiteConfig) -> None:
    """The product as a table of its domain's Glue database, and its grants (``mesh.glue``), when enabled."""
    glue = config.mesh.glue
    if glue.enabled:
        from etl_lib.mesh import glue as glue_catalog

        publication.glue_table = glue_catalog.register(publication, glue, config.services)
        if glue.lake_formation:
            glue_catalog.grant(publication, glue, config.services)


def _publish_one(
    spark: SparkSession, config: SuiteConfig, context: RunContext, ref: ProductRef, lineage: list[dict[str, Any]]
) -> tuple[Publication, TableWrite]:
    domain = config.mesh.domains[ref.domain]
    product = domain.products[ref.product]
    layer, _, name = product.source.partition("/")
    source_path = config.lakehouse.table_path(layer, name)
    if not lakehouse.is_delta_table(spark, source_path):
        raise SourceMissingError(f"{ref}: its source {product.source} does not exist yet")
    source_version = lakehouse.current_version(spark, source_path)
    frame = lakehouse.read(spark, source_path, source_version)
    missing = [c for c in product.columns if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"mesh.domains.{ref.domain}.products.{ref.product}.columns: {missing} not in {product.source}"
        )
    if product.columns:
        frame = frame.select(*product.columns)
    location = catalog.product_location(config.mesh, ref, config.lakehouse.root)
    with lakehouse.commit_metadata(spark, run_metadata(context, f"publish {ref}", product=str(ref))):
        lakehouse.overwrite(frame, location)
    version = lakehouse.current_version(spark, location)
    assert version is not None
    published = lakehouse.read(spark, location, version)
    commit = lakehouse.commits_since(spark, location, version - 1)[-1]

    freshness_at, is_fresh = _freshness(published, ref, product, context.run_time)
    rules = config.quality.rules_of(layer, name)
    contracts = f"{catalog.domain_location(domain, config.lakehouse.root)}/_contracts"
    publication = Publication(
        ref=ref,
        product=product,
        domain=domain,
        location=location,
        version=version,
        source_version=source_version,
        schema=[{"name": f.name, "type": f.dataType.simpleString(), "nullable": f.nullable} for f in published.schema],
        row_count=commit.rows_written,
        last_updated=_utc(commit.timestamp) or context.run_time,
        quality_score=quality_score(spark, config, product.source),
        quality_rules=[rule.model_dump(mode="json", exclude_none=True) for rule in (rules.rules if rules else [])],
        freshness_at=freshness_at,
        is_fresh=is_fresh,
        upstream=[f"{product.source}@{source_version}", *flatten(upstream(lineage, product.source, source_version))],
        model_versions=model_versions(published),
        contract_path=f"{contracts}/{catalog.table_name(ref)}.yaml",
    )
    document = catalog.contract(publication, "s3" if location.startswith("s3") else "local")
    catalog.check_contract(document)  # a contract the standard refuses is not written
    write_text(publication.contract_path, yaml.safe_dump(document, sort_keys=False))
    register_in_spark_catalog(spark, ref, location)
    _register_in_glue(publication, config)
    write = TableWrite("mesh", catalog.table_name(ref), location, publication.row_count, version)
    return publication, write


def publish_products(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Publish every configured data product; returns the product tables and the catalog written.

    Products are published side by side (``mesh.max_parallel_products`` at a time), each in a session of
    its own; one that fails leaves the others to be published and catalogued, and the run fails at the end.

    Raises:
        ConfigError: if no domain is configured.
        JobFailedError: naming each product not published (a source not written yet, a missing column).
    """
    refs = [ProductRef(d, p) for d, domain in sorted(config.mesh.domains.items()) for p in sorted(domain.products)]
    if not refs:
        raise ConfigError(f"{config.source_file}: mesh.domains declares no data product to publish")
    lineage = load_events(config.lakehouse.root)
    publications: dict[ProductRef, Publication] = {}
    failures: dict[ProductRef, EtlSuiteError | str] = {}

    def publishing(ref: ProductRef) -> Task:
        def run(session: SparkSession) -> list[TableWrite]:
            try:
                publication, write = _publish_one(session, config, context, ref, lineage)
            except Exception as error:
                failures[ref] = error if isinstance(error, EtlSuiteError) else explain(error)
                raise
            publications[ref] = publication
            log.info("published %s: %s rows, version %s", ref, f"{publication.row_count:,}", publication.version)
            return [write]

        # A task per product, so that its lineage names its own source only.
        return Task(f"publish {ref}", run)

    outcomes = run_tasks(spark, [publishing(ref) for ref in refs], config.mesh.max_parallel_products, context.lineage)
    result = JobResult(job=context.job, run_id=context.run_id)
    rows = []
    for ref, outcome in zip(refs, outcomes, strict=True):
        if outcome.status == "succeeded":
            rows.append(catalog.catalog_row(publications[ref], context.run_id, context.run_time, config.lakehouse.root))
            result.writes.extend(outcome.writes)
    path = config.lakehouse.table_path("mesh", "data_products")
    if rows:
        with lakehouse.commit_metadata(spark, run_metadata(context, context.job)):
            lakehouse.append(spark.createDataFrame(rows, catalog.CATALOG_SCHEMA), path)
        version = lakehouse.current_version(spark, path)
        result.writes.append(TableWrite("mesh", "data_products", path, len(rows), version))
    unpublished = [str(failures[ref]) for ref in refs if ref in failures]
    if unpublished:
        raise JobFailedError(f"{len(unpublished)} of {len(refs)} data products not published: {'; '.join(unpublished)}")
    result.metrics["products_published"] = len(rows)
    result.metrics["domains"] = len({r.domain for r in refs})
    return result
