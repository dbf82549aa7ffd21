"""``etl-suite quality replay --table T``: check quarantined rows again and release those that now pass.

After a rule is fixed (or the data behind it), the rows waiting in ``audit/quarantine`` for ``T`` are
turned back into rows of ``T``, evaluated with the rules as they are now, and those that pass are merged
into ``T`` (on the table's key, so a replay twice inserts nothing twice) and marked released.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, is_layer
from etl_lib.core.run import JobResult, RunContext, TableWrite, run_metadata
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse
from etl_lib.quality.audit import Stamp, record
from etl_lib.quality.engine import FAILURES, evaluate


@dataclass(frozen=True)
class ReplayReport:
    """What a replay found and did."""

    table: str
    examined: int
    released: int
    still_quarantined: int


def replay_quarantine(spark: SparkSession, config: SuiteConfig, context: RunContext, table: str) -> ReplayReport:
    """Re-check the unreleased quarantined rows of ``table`` (``layer/name``) and release those that pass.

    Raises:
        ConfigError: for a table without rules, without a key, or that does not exist yet.
    """
    layer, _, name = table.partition("/")
    rules = config.quality.tables.get(table)
    if rules is None:
        raise ConfigError(f"quality.tables: {table!r} has no rules, so nothing of it can be quarantined")
    if not rules.key:
        raise ConfigError(f"quality.tables.{table}.key: a replay merges rows by key; declare the key columns")
    target = config.lakehouse.table_path(layer, name)
    quarantine = config.lakehouse.table_path("audit", "quarantine")
    if not lakehouse.is_delta_table(spark, target):
        raise ConfigError(f"{table} does not exist yet at {target}")
    if not lakehouse.is_delta_table(spark, quarantine):
        return ReplayReport(table, 0, 0, 0)
    schema = lakehouse.read(spark, target).drop(FAILURES).schema
    waiting = lakehouse.read(spark, quarantine).where((F.col("table") == table) & F.col("released_at").isNull())
    rows = waiting.select("quarantine_id", F.from_json("record", schema).alias("r")).select("quarantine_id", "r.*")
    rows = rows.persist()
    examined = rows.count()
    if examined == 0:
        rows.unpersist()
        return ReplayReport(table, 0, 0, 0)
    stamp = Stamp(context.run_id, context.job, None, context.run_time)
    # A replay judges each row, not the batch: the quarantine holds the rows that failed, by design.
    evaluation = evaluate(rows, table, rules, 0.0, context.run_id, context.run_time)
    passing = evaluation.kept.persist()
    released = passing.count()
    metadata = run_metadata(context, f"quality/replay/{table}", released=released)
    with lakehouse.commit_metadata(spark, metadata):
        # The rows that still fail are in the quarantine already: only the results are new.
        record(spark, config.lakehouse, evaluation, stamp, quarantine=False)
        if released:
            lakehouse.insert_new(spark, target, passing.drop("quarantine_id"), list(rules.key))
            ids = passing.select("quarantine_id")
            (
                DeltaTable.forPath(spark, quarantine)
                .alias("q")
                .merge(ids.alias("p"), "q.quarantine_id = p.quarantine_id AND q.released_at IS NULL")
                .whenMatchedUpdate(
                    set={
                        "released_at": F.lit(context.run_time).cast("timestamp"),
                        "released_run_id": F.lit(context.run_id),
                    }
                )
                .execute()
            )
    passing.unpersist()
    rows.unpersist()
    return ReplayReport(table, examined, released, examined - released)


def replay_job(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Job ``quality_replay``: replay the quarantine of ``run.table`` (``--table``)."""
    table = config.run.table
    if not table:
        raise ConfigError("quality replay needs --table layer/name")
    report = replay_quarantine(spark, config, context, table)
    layer, _, name = table.partition("/")
    if not is_layer(layer):
        raise ConfigError(f"--table {table}: {layer!r} is not a layer of the lakehouse")
    result = JobResult(job=context.job, run_id=context.run_id)
    path = config.lakehouse.table_path(layer, name)
    result.writes.append(TableWrite(layer, name, path, report.released, lakehouse.current_version(spark, path)))
    result.metrics.update(
        examined=report.examined, released=report.released, still_quarantined=report.still_quarantined
    )
    return result
