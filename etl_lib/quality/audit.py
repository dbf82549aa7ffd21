"""Writing quality outcomes: ``audit/quality_results`` and ``audit/quarantine``.

Results get one row per rule per evaluated batch. Quarantined rows keep their values as JSON (so a row
of any table fits one quarantine) next to the list of rules they failed; ``etl-suite quality replay``
turns them back into rows of their table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import LakehouseConfig
from etl_lib.errors import JobFailedError
from etl_lib.io import lakehouse
from etl_lib.quality.engine import FAILURES, Evaluation

RESULTS_SCHEMA = (
    "run_id STRING, job STRING, `table` STRING, batch_id BIGINT, rule STRING, rule_type STRING, "
    "columns ARRAY<STRING>, severity STRING, action STRING, metric DOUBLE, threshold DOUBLE, passed BOOLEAN, "
    "failing_rows BIGINT, `rows` BIGINT, sample_keys ARRAY<STRING>, message STRING, score DOUBLE, "
    "score_threshold DOUBLE, held BOOLEAN, evaluated_at TIMESTAMP"
)
RESULTS_COLUMNS = tuple(column.split(" ")[0].strip("`") for column in RESULTS_SCHEMA.split(", "))


class QualityFailedError(JobFailedError):
    """A rule with action ``fail`` did not pass, or a batch was held back by the quality gate."""


@dataclass(frozen=True)
class Stamp:
    """Who evaluated: the run, the job, the micro-batch (None for a batch job), and when."""

    run_id: str
    job: str
    batch_id: int | None
    at: dt.datetime


def results_rows(evaluation: Evaluation, stamp: Stamp) -> list[tuple[Any, ...]]:
    """The evaluation's rows of ``audit/quality_results`` (:data:`RESULTS_SCHEMA`), one per rule."""
    return [
        (
            stamp.run_id,
            stamp.job,
            evaluation.table,
            stamp.batch_id,
            r.rule,
            r.type,
            r.columns,
            r.severity,
            r.action,
            r.metric,
            r.threshold,
            r.passed,
            r.failing_rows,
            r.rows,
            r.sample_keys,
            r.message,
            evaluation.score,
            evaluation.threshold,
            evaluation.held,
            stamp.at,
        )
        for r in evaluation.results
    ]


def results_frame(spark: SparkSession, evaluation: Evaluation, stamp: Stamp) -> DataFrame:
    """One row per rule of the evaluation."""
    return spark.createDataFrame(results_rows(evaluation, stamp), RESULTS_SCHEMA)


def quarantine_rows(evaluation: Evaluation, stamp: Stamp) -> DataFrame:
    """The rows the evaluation sets aside, as quarantine rows (values as JSON, reasons, lineage)."""
    if evaluation.held:
        reason = f"batch held back: score {evaluation.score:.2f} below {evaluation.threshold:.2f}"
        rows = evaluation.held_rows
    else:
        reason = "failed a quarantine rule"
        rows = evaluation.quarantined
    values = [c for c in rows.columns if c != FAILURES]
    record = F.to_json(F.struct(*[F.col(f"`{c}`") for c in values]))
    batch = F.lit(stamp.batch_id).cast("bigint")
    identity = F.sha2(F.concat_ws("|", F.lit(evaluation.table), F.lit(stamp.run_id), batch.cast("string"), record), 256)
    return rows.select(
        identity.alias("quarantine_id"),
        F.lit(evaluation.table).alias("table"),
        F.lit(stamp.run_id).alias("run_id"),
        F.lit(stamp.job).alias("job"),
        batch.alias("batch_id"),
        record.alias("record"),
        F.col(FAILURES).alias("failures"),
        F.lit(reason).alias("reason"),
        F.lit(stamp.at).cast("timestamp").alias("quarantined_at"),
        F.lit(None).cast("timestamp").alias("released_at"),
        F.lit(None).cast("string").alias("released_run_id"),
    )


def record(
    spark: SparkSession,
    lake: LakehouseConfig,
    evaluation: Evaluation,
    stamp: Stamp,
    idempotency: tuple[str, int] | None = None,
    quarantine: bool = True,
    written: Collection[str] = (),
    results: bool = True,
) -> None:
    """Append the evaluation's results, and its quarantined rows if any, to the audit tables.

    Args:
        spark: the session to write with.
        lake: where the audit tables are.
        evaluation: what :func:`etl_lib.quality.engine.evaluate` found.
        stamp: run, job, micro-batch and time of the evaluation.
        idempotency: ``(application id, version)`` for a micro-batch, so that a replay appends nothing twice.
        quarantine: also write the rows the evaluation sets aside.
        written: tables (paths) that already hold these records (a replayed micro-batch), not written again.
        results: also write the rows of ``audit/quality_results`` (a stream may hold them for a later append).
    """
    txn = (lambda table: (f"{idempotency[0]}:{table}", idempotency[1])) if idempotency else (lambda table: None)
    path, held = lake.table_path("audit", "quality_results"), lake.table_path("audit", "quarantine")
    if results and path not in written:
        lakehouse.append_retrying(results_frame(spark, evaluation, stamp), path, txn("audit/quality_results"))
    if quarantine and (evaluation.held or evaluation.quarantined_rows) and held not in written:
        lakehouse.append_retrying(quarantine_rows(evaluation, stamp), held, txn("audit/quarantine"))


def raise_for(evaluation: Evaluation, stop_when_held: bool = True) -> None:
    """Stop the run if a ``fail`` rule did not pass, or (for batch jobs) if the batch was held back.

    Raises:
        QualityFailedError: naming the rules and the table.
    """
    if evaluation.failed:
        details = "; ".join(f"{r.rule} ({r.message})" for r in evaluation.failed)
        raise QualityFailedError(f"{evaluation.table}: rule(s) that stop the run did not pass: {details}")
    if evaluation.held and stop_when_held:
        raise QualityFailedError(
            f"{evaluation.table}: quality score {evaluation.score:.2f} is below {evaluation.threshold:.2f}; "
            f"the batch of {evaluation.rows:,} rows is held back in audit/quarantine "
            f"(release it with `etl-suite quality replay --table {evaluation.table}`)"
        )
