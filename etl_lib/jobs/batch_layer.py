"""Job ``batch_layer``: extracts to bronze, silver and gold, incrementally and idempotently.

The run is a small graph of tasks on one Spark application:

    bronze/<each source>  ->  silver/order_lines  ->  silver/dim_products
                                                   ->  silver/dim_customers
                                                   ->  gold/customer_features
                                                   ->  gold/daily_revenue

Independent tasks run at the same time (``batch.max_parallel_tables``); a failed task skips only what
depends on it, and the run fails naming it. Every step reads only what is new since it last committed
(file checkpoints, JDBC bookmarks, Delta streams over the tables upstream), and writes by MERGE only
the rows whose values change, so a second run on the same data writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial

from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import BatchConfig, EntityConfig, FileSourceConfig, JdbcSourceConfig, SuiteConfig, secrets
from etl_lib.core.run import JobResult, RunContext, TableWrite, run_metadata
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse
from etl_lib.jobs.landing import land_files, land_jdbc
from etl_lib.layers import Step, dimensions, gold, privacy, silver
from etl_lib.layers.changes import diff_rows
from etl_lib.quality.apply import check
from etl_lib.quality.audit import Stamp
from etl_lib.runtime.cache import Cached
from etl_lib.runtime.dag import Task, raise_for_failures, run_tasks

ENTITY = "order_lines"


def _require(config: SuiteConfig) -> tuple[BatchConfig, EntityConfig]:
    if config.batch is None:
        raise ConfigError(f"{config.source_file}: batch: the batch layer needs a `batch` section")
    entity = config.entities.get(ENTITY)
    if entity is None:
        raise ConfigError(f"{config.source_file}: entities.{ENTITY}: the batch layer needs this entity")
    if not config.sources_of(ENTITY):
        raise ConfigError(f"{config.source_file}: sources: no source has `entity: {ENTITY}`")
    return config.batch, entity


def _order_lines_handler(
    config: SuiteConfig, context: RunContext, name: str, source: FileSourceConfig | JdbcSourceConfig
) -> Callable[[DataFrame, int], None]:
    """What one micro-batch of a bronze table does to silver/order_lines and the rejects."""
    batch, entity = _require(config)
    target = config.lakehouse.table_path("silver", ENTITY)
    rejects = config.lakehouse.table_path("audit", "rejects")
    to_entity = silver.to_entity(entity, source.columns, source.formats)
    clean = silver.clean_order_lines(batch.product_code_pattern, batch.non_product_codes)
    reading = f"bronze/{source.table}"
    score = _anomaly_scoring(config)
    key = secrets.privacy_key(config, ENTITY)
    protect = privacy.pii_protection(config.privacy.pii.get(ENTITY, {}), key)

    reference = end_of(config, context)

    def handle(frame: DataFrame, batch_id: int) -> None:
        session = frame.sparkSession
        metadata = run_metadata(context, f"silver/{ENTITY}", source=name, reading=reading, batch_id=batch_id)
        stamp = Stamp(context.run_id, context.job, batch_id, context.run_time)
        with Cached() as cache:
            frame = cache(frame)
            typed = cache(frame.transform(to_entity))
            with lakehouse.commit_metadata(session, metadata):
                # The extract as landed is measured (bronze keeps every row whatever its quality).
                check(
                    session, config, "bronze", source.table, frame, stamp, reference, (f"quality:{reading}", batch_id)
                )
                bad = typed.transform(silver.rejected(f"silver/{ENTITY}", context.run_id, context.run_time))
                if not bad.isEmpty():
                    # A replayed micro-batch (after a crash) must not reject its rows twice.
                    lakehouse.append(bad, rejects, idempotency=(f"rejects:{reading}->silver/{ENTITY}", batch_id))
                good = cache(
                    silver.accepted(typed)
                    # The line id is taken over the values as landed (keyed when some are personal), so
                    # that masking two different values alike does not make two lines one.
                    .transform(silver.with_line_id(list(entity.columns), key))
                    .transform(protect)
                    .transform(clean)
                    .transform(silver.dedupe_lines)
                    .transform(score)
                    .transform(_stamped(context))
                )
                kept, _ = check(
                    session, config, "silver", ENTITY, good, stamp, reference, (f"quality:{reading}->silver", batch_id)
                )
                lakehouse.insert_new(session, target, kept, [silver.LINE_ID])

    return handle


def _anomaly_scoring(config: SuiteConfig) -> Step:
    """The step scoring purchase lines (sales of products) with the anomaly model's champion, or no step."""
    from pyspark.sql import functions as F

    from etl_lib.ml.anomaly import champion_scoring

    purchases = ~F.col("is_cancellation") & F.col("is_product")
    return champion_scoring(config.ml, purchases, enabled=config.ml.anomaly.in_batch_layer)


def build_order_lines(spark: SparkSession, config: SuiteConfig, context: RunContext) -> list[TableWrite]:
    """Type, check, clean and deduplicate what landed in bronze since the last run into silver/order_lines."""
    _require(config)
    lake = config.lakehouse
    target = lake.table_path("silver", ENTITY)
    rejects = lake.table_path("audit", "rejects")
    before, rejects_before = lakehouse.current_version(spark, target), lakehouse.current_version(spark, rejects)
    for name, source in config.sources_of(ENTITY).items():
        bronze = lake.table_path("bronze", source.table)
        if not lakehouse.is_delta_table(spark, bronze):
            continue
        lakehouse.foreach_batch_available_now(
            lakehouse.read_stream(spark, bronze),
            lake.checkpoint_path("silver", ENTITY, reading=f"bronze/{source.table}"),
            f"silver_{ENTITY}_from_{source.table}",
            _order_lines_handler(config, context, name, source),
        )
    return [
        lakehouse.writes_of_run(spark, "silver", ENTITY, target, before, context.run_id),
        lakehouse.writes_of_run(spark, "audit", "rejects", rejects, rejects_before, context.run_id),
    ]


def _stamped(context: RunContext) -> Step:
    from pyspark.sql import functions as F

    def step(frame: DataFrame) -> DataFrame:
        return frame.withColumn("_run_id", F.lit(context.run_id)).withColumn(
            "_processed_at", F.lit(context.run_time).cast("timestamp")
        )

    return step


def build_dim_products(spark: SparkSession, config: SuiteConfig, context: RunContext) -> list[TableWrite]:
    """Fold order lines new since the last run into silver/dim_products (current description and price)."""
    batch, _ = _require(config)
    lake = config.lakehouse
    order_lines, target = lake.table_path("silver", ENTITY), lake.table_path("silver", "dim_products")
    if not lakehouse.is_delta_table(spark, order_lines):
        return []
    before = lakehouse.current_version(spark, target)

    def handle(frame: DataFrame, batch_id: int) -> None:
        session = frame.sparkSession
        snapshots = dimensions.product_snapshots(frame)
        lakehouse.ensure_table(session, target, dimensions.combine_products(snapshots, batch.price_categories).schema)
        current = lakehouse.read(session, target).join(snapshots.select("stock_code"), "stock_code", "left_semi")
        desired = dimensions.combine_products(snapshots.unionByName(current), batch.price_categories)
        metadata = run_metadata(context, "silver/dim_products", reading=f"silver/{ENTITY}", batch_id=batch_id)
        with lakehouse.commit_metadata(session, metadata):
            lakehouse.apply_changes(session, target, diff_rows(desired, current, ["stock_code"]), ["stock_code"])

    lakehouse.foreach_batch_available_now(
        lakehouse.read_stream(spark, order_lines),
        lake.checkpoint_path("silver", "dim_products", reading=f"silver/{ENTITY}"),
        "silver_dim_products",
        handle,
    )
    return [lakehouse.writes_of_run(spark, "silver", "dim_products", target, before, context.run_id)]


def build_dim_customers(spark: SparkSession, config: SuiteConfig, context: RunContext) -> list[TableWrite]:
    """Fold order lines new since the last run into the Type 2 history of silver/dim_customers."""
    batch, _ = _require(config)
    scd2 = batch.customers
    lake = config.lakehouse
    order_lines, target = lake.table_path("silver", ENTITY), lake.table_path("silver", "dim_customers")
    if not lakehouse.is_delta_table(spark, order_lines):
        return []
    before = lakehouse.current_version(spark, target)
    version_keys = [*scd2.keys, dimensions.EFFECTIVE_FROM]

    def handle(frame: DataFrame, batch_id: int) -> None:
        session = frame.sparkSession
        observations = dimensions.customer_observations(frame, scd2).persist()
        try:
            lakehouse.ensure_table(session, target, dimensions.empty_history(observations, scd2).schema)
            existing = lakehouse.read(session, target)
            history = dimensions.scd2_history(observations, existing, scd2)
            current = existing.join(observations.select(*scd2.keys).distinct(), scd2.keys, "left_semi")
            metadata = run_metadata(context, "silver/dim_customers", reading=f"silver/{ENTITY}", batch_id=batch_id)
            with lakehouse.commit_metadata(session, metadata):
                lakehouse.apply_changes(session, target, diff_rows(history, current, version_keys), version_keys)
        finally:
            observations.unpersist()

    lakehouse.foreach_batch_available_now(
        lakehouse.read_stream(spark, order_lines),
        lake.checkpoint_path("silver", "dim_customers", reading=f"silver/{ENTITY}"),
        "silver_dim_customers",
        handle,
    )
    return [lakehouse.writes_of_run(spark, "silver", "dim_customers", target, before, context.run_id)]


def build_gold(
    spark: SparkSession,
    config: SuiteConfig,
    context: RunContext,
    table: str,
    keys: list[str],
    process_date: dt.date,
) -> list[TableWrite]:
    """Make gold ``table`` equal to its recomputation from silver as of ``process_date``.

    Skipped when neither silver nor the process date changed since the table was last built; otherwise
    only rows whose values differ are written.

    Args:
        spark: the session.
        config: the suite configuration.
        context: the run.
        table: the gold table: ``customer_features`` or ``daily_revenue``.
        keys: the table's key columns, which changed rows are matched on.
        process_date: the last invoice day included; the features' recency and tenure count to it.
    """
    batch, _ = _require(config)
    lake = config.lakehouse
    order_lines, target = lake.table_path("silver", ENTITY), lake.table_path("gold", table)
    silver_version = lakehouse.current_version(spark, order_lines)
    if silver_version is None:
        return []
    before = lakehouse.current_version(spark, target)
    inputs = {f"silver/{ENTITY}": silver_version}
    built = lakehouse.last_commit_where(spark, target, lambda commit: "inputs" in commit.user_metadata)
    if (
        built is not None
        and built.user_metadata["inputs"] == inputs
        and built.user_metadata.get("process_date") == str(process_date)
    ):
        return [lakehouse.writes_of_run(spark, "gold", table, target, before, context.run_id)]
    steps = {
        "customer_features": gold.customer_features(process_date, batch.customer_segments),
        "daily_revenue": gold.daily_revenue(process_date),
    }
    computed = lakehouse.read(spark, order_lines, version=silver_version).transform(steps[table]).persist()
    stamp = Stamp(context.run_id, context.job, None, context.run_time)
    desired, _ = check(spark, config, "gold", table, computed, stamp, end_of(config, context))
    lakehouse.ensure_table(spark, target, desired.schema)
    changes = diff_rows(desired, lakehouse.read(spark, target), keys)
    metadata = run_metadata(context, f"gold/{table}", inputs=inputs, process_date=str(process_date))
    with lakehouse.commit_metadata(spark, metadata):
        lakehouse.apply_changes(spark, target, changes, keys)
    computed.unpersist()
    return [lakehouse.writes_of_run(spark, "gold", table, target, before, context.run_id)]


def process_date_of(config: SuiteConfig, context: RunContext) -> dt.date:
    """The run's process date: ``run.process_date``, else the run's own date (UTC)."""
    return config.run.process_date or context.run_time.date()


def end_of(config: SuiteConfig, context: RunContext) -> dt.datetime:
    """The end of the process date: "now" for freshness rules of a batch run."""
    day = process_date_of(config, context) + dt.timedelta(days=1)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def batch_tasks(config: SuiteConfig, context: RunContext, process_date: dt.date) -> list[Task]:
    """The task graph of one batch-layer run."""
    landing: list[Task] = []
    for name, source in config.sources_of(ENTITY).items():
        if isinstance(source, FileSourceConfig):
            land = partial(land_files, config=config, name=name, source=source, context=context)
        else:
            land = partial(land_jdbc, config=config, name=name, source=source, context=context)
        landing.append(Task(f"bronze/{source.table}", land))
    silver_task = Task(
        f"silver/{ENTITY}",
        partial(build_order_lines, config=config, context=context),
        depends_on=tuple(task.name for task in landing),
    )
    after_silver = (silver_task.name,)
    return [
        *landing,
        silver_task,
        Task("silver/dim_products", partial(build_dim_products, config=config, context=context), after_silver),
        Task("silver/dim_customers", partial(build_dim_customers, config=config, context=context), after_silver),
        *(
            Task(
                f"gold/{table}",
                partial(build_gold, config=config, context=context, table=table, keys=keys, process_date=process_date),
                after_silver,
            )
            for table, keys in (
                ("customer_features", gold.CUSTOMER_FEATURE_KEYS),
                ("daily_revenue", gold.DAILY_REVENUE_KEYS),
            )
        ),
    ]


def batch_layer(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Run the batch layer for ``run.process_date`` (default: the run's own date, UTC).

    Returns:
        Every table written, with the rows its commits of this run wrote.

    Raises:
        ConfigError: if the batch section, the order-lines entity or its sources are missing.
        JobFailedError: naming each task that failed and those skipped because of it.
    """
    batch, _ = _require(config)
    process_date = process_date_of(config, context)
    outcomes = run_tasks(spark, batch_tasks(config, context, process_date), batch.max_parallel_tables, context.lineage)
    result = JobResult(job=context.job, run_id=context.run_id)
    for outcome in outcomes:
        result.writes.extend(outcome.writes)
        result.metrics[f"seconds {outcome.name}"] = round(outcome.seconds, 1)
    result.metrics["process_date"] = str(process_date)
    raise_for_failures(outcomes)
    return result
