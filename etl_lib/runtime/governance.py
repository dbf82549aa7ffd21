"""What every job run leaves behind, whatever the job: ``audit/etl_runs``, lineage, OpenLineage events.

A run gets a ``running`` row in ``audit/etl_runs`` when it starts and a ``succeeded`` or ``failed`` row
when it ends; the run that takes over the lock of a killed run writes an ``abandoned`` row for it. Rows
are only ever appended, so concurrent jobs cannot conflict. They hold the configuration (secrets
redacted), versions and metrics. When a run ends, its lineage (what each task read and wrote, with Delta
versions and row counts) goes to ``audit/lineage_events`` and an OpenLineage COMPLETE or FAIL event
follows the START event it emitted at the beginning. Calls to monitoring and alerting sinks the run gave up
(``audit/sink_failures``) are counted in its end row's metrics.
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import SparkSession

from etl_lib import __version__
from etl_lib.config import SuiteConfig, redacted, secrets
from etl_lib.core.capture import LineageRecorder
from etl_lib.core.run import JobResult, RunContext
from etl_lib.io import degraded, lakehouse
from etl_lib.lineage import events as lineage_events
from etl_lib.lineage.openlineage import Emitter

log = logging.getLogger(__name__)

RUNS_SCHEMA = (
    "run_id STRING, pipeline STRING, job STRING, environment STRING, platform STRING, spark_version STRING, "
    "suite_version STRING, started_at TIMESTAMP, ended_at TIMESTAMP, status STRING, error STRING, config STRING, "
    "metrics MAP<STRING, STRING>"
)
STREAMING_JOBS = {"speed_layer"}


def platform_of(spark: SparkSession, config: SuiteConfig) -> str:
    """``local``, or the platform whose session the job runs in, told by the session's own settings."""
    if config.spark.session == "local":
        return "local"
    conf = spark.sparkContext.getConf()
    if conf.get("spark.databricks.clusterUsageTags.clusterId", None):
        return "databricks"
    if conf.get("spark.glue.JOB_NAME", None) or conf.get("spark.glueJobInsights.enabled", None):
        return "glue"
    if any(key.startswith("spark.emr") for key, _ in conf.getAll()):
        return "emr"
    return "platform"


class Governance:
    """Records one job run."""

    def __init__(
        self, spark: SparkSession, config: SuiteConfig, context: RunContext, recorder: LineageRecorder
    ) -> None:
        self.spark = spark
        self.config = config
        self.context = context
        self.recorder = recorder
        self.started_at = context.run_time
        self.emitter = Emitter(config, context.job, context.run_id, context.clock)

    def _row(self, status: str, error: str | None, metrics: dict[str, str]) -> None:
        ended = None if status == "running" else self.context.clock()
        row = (
            self.context.run_id,
            self.config.app.name,
            self.context.job,
            self.config.app.environment,
            platform_of(self.spark, self.config),
            self.spark.version,
            __version__,
            self.started_at,
            ended,
            status,
            error,
            json.dumps(redacted(self.config), sort_keys=True),
            metrics,
        )
        frame = self.spark.createDataFrame([row], RUNS_SCHEMA)
        lakehouse.append_retrying(frame, self.config.lakehouse.table_path("audit", "etl_runs"))

    def abandoned(self, run_id: str, job: str, claimed_at: object, why: str) -> None:
        """Close the ``running`` row of a run that died without recording its end (its lock was taken over).

        Its start is given as when it claimed the lock, moments after it started.

        Args:
            run_id: the dead run.
            job: the dead run's job.
            claimed_at: when the dead run claimed the lock (a timestamp, UTC).
            why: why its lock was free (:func:`etl_lib.runtime.run_lock.why_free`), for the row's error.
        """
        row: tuple[object, ...] = (
            run_id,
            self.config.app.name,
            job,
            self.config.app.environment,
            platform_of(self.spark, self.config),
            self.spark.version,
            __version__,
            claimed_at,
            self.context.clock(),
            "abandoned",
            f"{why}; run {self.context.run_id} took over its lock",
            None,
            {},
        )
        frame = self.spark.createDataFrame([row], RUNS_SCHEMA)
        lakehouse.append_retrying(frame, self.config.lakehouse.table_path("audit", "etl_runs"))

    def started(self) -> None:
        """The run begins: a ``running`` row and an OpenLineage START event."""
        self._row("running", None, {})
        self.emitter.emit("START", self.started_at, self.spark.version, streaming=self.context.job in STREAMING_JOBS)
        degraded.record(self.spark, self.config.lakehouse, self.emitter.guard.drain())

    def finished(self, result: JobResult | None, error: BaseException | None) -> None:
        """The run ended (``result`` when it succeeded, ``error`` when not): lineage, COMPLETE/FAIL, run row.

        The row's metrics count the calls to monitoring and alerting sinks the run gave up (those of its
        COMPLETE or FAIL event included), as the result's metrics do.
        """
        found: list[lineage_events.LineageEvent] = []
        if result is not None:
            found = lineage_events.collect(self.spark, self.config, self.context, result, self.recorder.reads())
            lineage_events.write(self.spark, self.config, self.context, found, self.context.clock())
        status = "succeeded" if error is None else "failed"
        # A failure's text may quote what a driver or a service said back, secrets included: scrubbed.
        message = None if error is None else secrets.scrub(f"{type(error).__name__}: {error}")
        inputs = sorted({(e.dataset, e.version) for e in found if e.kind == "read"}, key=str)
        outputs = [(e.dataset, e.version, e.rows) for e in found if e.kind == "write"]
        self.emitter.emit(
            "COMPLETE" if error is None else "FAIL",
            self.context.clock(),
            self.spark.version,
            inputs=inputs,
            outputs=outputs,
            error=message,
            streaming=self.context.job in STREAMING_JOBS,
        )
        lake = self.config.lakehouse
        degraded.record(self.spark, lake, self.emitter.guard.drain())
        given_up = degraded.run_metrics(degraded.counts_of_run(self.spark, lake, self.context.run_id))
        if result is not None:
            result.metrics.update(given_up)
        metrics = {key: str(value) for key, value in {**(result.metrics if result else {}), **given_up}.items()}
        self._row(status, message, metrics)
