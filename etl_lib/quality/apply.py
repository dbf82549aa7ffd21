"""The one call jobs make: check a batch against its table's rules, record the outcome, keep what passes."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection

from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import Layer, SuiteConfig
from etl_lib.io import degraded
from etl_lib.io.degraded import Origin, SinkGuard
from etl_lib.quality import alerts
from etl_lib.quality.audit import Stamp, raise_for, record
from etl_lib.quality.engine import Evaluation, evaluate

log = logging.getLogger(__name__)


def evaluate_rules(
    config: SuiteConfig, layer: Layer, table: str, frame: DataFrame, stamp: Stamp, reference_time: dt.datetime
) -> Evaluation | None:
    """Evaluate ``layer/table``'s rules on ``frame``, or None if the table has no rules.

    Persist ``frame`` if it is costly to compute: it is read twice. Nothing is written: :func:`record_outcome`
    records the evaluation.

    Args:
        config: the suite configuration (rules and thresholds).
        layer: layer of the table the batch is for.
        table: the table's name.
        frame: the batch.
        stamp: run, job, micro-batch and time; the evaluation carries the run id.
        reference_time: "now" for freshness rules.
    """
    rules = config.quality.rules_of(layer, table)
    if rules is None:
        return None
    evaluation = evaluate(
        frame, f"{layer}/{table}", rules, config.quality.threshold_of(rules), stamp.run_id, reference_time
    )
    log.info("quality %s", evaluation.summary)
    return evaluation


def record_outcome(
    spark: SparkSession,
    config: SuiteConfig,
    evaluation: Evaluation,
    stamp: Stamp,
    idempotency: tuple[str, int] | None = None,
    written: Collection[str] = (),
    results: bool = True,
) -> None:
    """Record an evaluation in the audit tables, then announce it (metrics, and an alert when warranted).

    Announced once recorded, so that whoever an alert sends to the audit tables finds the results there.
    CloudWatch or SNS out of reach never stops the batch: what they did not take is a row of
    ``audit/sink_failures``.

    Args:
        spark: session for the audit writes.
        config: the suite configuration (lakehouse, alerts, sinks).
        evaluation: what :func:`evaluate_rules` found.
        stamp: run, job, micro-batch and time.
        idempotency: ``(application id, micro-batch id)`` so a replayed micro-batch records nothing twice.
        written: audit tables (paths) that already hold this batch's records (the replay of a micro-batch a
            crash interrupted records only the rest).
        results: write the rows of ``audit/quality_results`` too; a stream that holds them for a later append
            (and an alert needs none of them) passes False.
    """
    record(spark, config.lakehouse, evaluation, stamp, idempotency, written=written, results=results)
    guard = SinkGuard(config.sinks, Origin(stamp.run_id, stamp.job, stamp.batch_id))
    alerts.announce(config.quality.alerts, config.services, evaluation, guard)
    degraded.record(spark, config.lakehouse, guard.drain())


def check(
    spark: SparkSession,
    config: SuiteConfig,
    layer: Layer,
    table: str,
    frame: DataFrame,
    stamp: Stamp,
    reference_time: dt.datetime,
    idempotency: tuple[str, int] | None = None,
) -> tuple[DataFrame, Evaluation | None]:
    """Evaluate ``layer/table``'s rules on a batch job's ``frame``, record the outcome, and stop if it must.

    Args:
        spark: session for the audit writes.
        config: the suite configuration (rules, lakehouse, alerts).
        layer: layer of the table the batch is for.
        table: the table's name.
        frame: the batch; persist it if it is costly to compute, it is read twice.
        stamp: run, job and time.
        reference_time: "now" for freshness rules.
        idempotency: ``(application id, version)`` so that a repeated write records nothing twice.

    Returns:
        The rows to write (with ``_dq_failures``) and the evaluation, or ``frame`` itself and None when the
        table has no rules.

    Raises:
        QualityFailedError: after recording, if a ``fail`` rule did not pass or the batch was held back.
    """
    evaluation = evaluate_rules(config, layer, table, frame, stamp, reference_time)
    if evaluation is None:
        return frame, None
    record_outcome(spark, config, evaluation, stamp, idempotency)
    raise_for(evaluation)
    return evaluation.kept, evaluation
