"""The one call jobs make: check a batch against its table's rules, record the outcome, keep what passes."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection

from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import Layer, SuiteConfig
from etl_lib.platform import degraded
from etl_lib.platform.degraded import Origin, SinkGuard
from etl_lib.quality import alerts
from etl_lib.quality.audit import Stamp, raise_for, record
from etl_lib.quality.engine import Evaluation, evaluate

log = logging.getLogger(__name__)


def check(
    spark: SparkSession,
    config: SuiteConfig,
    layer: Layer,
    table: str,
    frame: DataFrame,
    stamp: Stamp,
    reference_time: dt.datetime,
    idempotency: tuple[str, int] | None = None,
    stop_when_held: bool = True,
    deferred: list[Callable[[], object]] | None = None,
    written: Collection[str] = (),
) -> tuple[DataFrame, Evaluation | None]:
    """Evaluate ``layer/table``'s rules on ``frame``, write results and quarantine, announce, maybe stop.

    Args:
        spark: session for the audit writes.
        config: the suite configuration (rules, lakehouse, alerts).
        layer: layer of the table the batch is for.
        table: the table's name.
        frame: the batch; persist it if it is costly to compute, it is read twice.
        stamp: run, job, micro-batch and time.
        reference_time: "now" for freshness rules.
        idempotency: ``(application id, micro-batch id)`` so a replayed micro-batch records nothing twice.
        stop_when_held: a batch job stops when its batch is held back; a stream goes on with the next batch.
        deferred: when given, the audit writes (then the alerts) of a batch that goes on are added to it instead
            of made here, for the caller to make beside its own writes (with ``idempotency``, a batch replayed
            after a crash between them writes each once). A batch that stops records before it raises.
            Alerts CloudWatch or SNS do not take are given up, each a row of ``audit/sink_failures``.
        written: audit tables (paths) that already hold this micro-batch's records: the replay of a batch a
            crash interrupted records only the rest.

    Returns:
        The rows to write (with ``_dq_failures``) and the evaluation, or ``frame`` itself and None when the
        table has no rules.

    Raises:
        QualityFailedError: after recording, if a ``fail`` rule did not pass or a batch job's batch was held.
    """
    rules = config.quality.rules_of(layer, table)
    if rules is None:
        return frame, None
    evaluation = evaluate(
        frame, f"{layer}/{table}", rules, config.quality.threshold_of(rules), stamp.run_id, reference_time
    )

    def record_and_announce() -> None:
        # Announced once recorded, so that whoever an alert sends to the audit tables finds the results there.
        record(spark, config.lakehouse, evaluation, stamp, idempotency, written=written)
        # CloudWatch or SNS out of reach never stops the batch: what they did not take is recorded instead.
        guard = SinkGuard(config.sinks, Origin(stamp.run_id, stamp.job, stamp.batch_id))
        alerts.announce(config.quality.alerts, config.services, evaluation, guard)
        degraded.record(spark, config.lakehouse, guard.drain())

    stops = bool(evaluation.failed) or (evaluation.held and stop_when_held)
    if deferred is not None and not stops:
        deferred.append(record_and_announce)
    else:
        record_and_announce()
    log.info("quality %s", evaluation.summary)
    raise_for(evaluation, stop_when_held)
    return evaluation.kept, evaluation
