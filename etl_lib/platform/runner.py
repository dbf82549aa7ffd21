"""Run a job by name: the one function every entry point (CLI, spark-submit, Glue, notebooks) calls."""

from __future__ import annotations

import logging
import time

from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig
from etl_lib.lineage.capture import task_scope
from etl_lib.platform.governance import Governance
from etl_lib.platform.registry import get_job
from etl_lib.platform.runtime import JobResult, RunContext
from etl_lib.platform.secrets import install_log_redaction
from etl_lib.platform.session import build_session

log = logging.getLogger(__name__)


def run_job(
    name: str,
    config: SuiteConfig,
    spark: SparkSession | None = None,
    context: RunContext | None = None,
) -> JobResult:
    """Run job ``name`` with ``config``.

    Args:
        name: a job of :data:`etl_lib.platform.registry.JOBS`.
        config: the validated configuration.
        spark: a session to use; built from ``config.spark`` when None.
        context: run id and clock; a fresh one when None.

    Returns:
        What the job wrote.

    Raises:
        UsageError: for an unknown job (before any session is built).
        EtlSuiteError: whatever the job raises; it is never swallowed.
    """
    spec = get_job(name)
    # Notebooks and tests call this directly: the log handlers they have scrub secrets as the CLI's do.
    install_log_redaction()
    function = spec.load()
    context = context or RunContext.new(name)
    session = spark or build_session(config.spark)
    governance = Governance(session, config, context, context.lineage)
    started = time.monotonic()
    log.info("job %s run %s started", name, context.run_id)
    governance.started()
    try:
        with task_scope(context.lineage, name):
            result = function(session, config, context)
    except BaseException as error:
        try:
            governance.finished(None, error)
        except Exception as audit_error:  # noqa: BLE001 - the job's own error is the one to raise
            log.error("could not record the failed run %s: %s", context.run_id, audit_error)
        raise
    result.metrics.setdefault("duration_seconds", round(time.monotonic() - started, 2))
    governance.finished(result, None)
    log.info("job %s run %s succeeded", name, context.run_id)
    return result
