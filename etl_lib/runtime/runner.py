"""Run a job by name: the one function every entry point (CLI, spark-submit, Glue, notebooks) calls."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig
from etl_lib.config.secrets import install_log_redaction
from etl_lib.core.capture import task_scope
from etl_lib.core.run import JobResult, RunContext
from etl_lib.runtime import run_lock
from etl_lib.runtime.governance import Governance
from etl_lib.runtime.registry import get_job
from etl_lib.runtime.session import build_session

log = logging.getLogger(__name__)


def _lock(
    lock: str | None, session: SparkSession, config: SuiteConfig, context: RunContext, governance: Governance
) -> run_lock.Lease | None:
    """Hold ``lock`` for this run (None: the job needs none), closing the row of a dead run it takes over from."""
    if lock is None:
        return None
    path = config.lakehouse.table_path("audit", "run_locks")
    lease = run_lock.acquire(
        session,
        path,
        lock,
        context.run_id,
        config.run.lock_wait_seconds,
        config.run.lock_lease_seconds,
        job=context.job,
    )
    dead = lease.took_over
    if dead is not None:
        log.warning("lock %s: %s; this run takes over", lock, lease.reason)
        try:
            governance.abandoned(dead.run_id, dead.job, dead.since, lease.reason)
        except Exception as audit_error:  # noqa: BLE001 - the run goes on; only the dead run's record is missing
            log.error("could not record run %s as abandoned: %s", dead.run_id, audit_error)
    return lease


def _release(lease: run_lock.Lease | None, run_id: str) -> None:
    if lease is None:
        return
    try:
        lease.release()
    except Exception as lock_error:  # noqa: BLE001 - the run's outcome stands; its lease runs out
        log.error("could not release lock %s of run %s: %s", lease.lock, run_id, lock_error)


def _failed(governance: Governance, context: RunContext, error: BaseException) -> None:
    try:
        governance.finished(None, error)
    except Exception as audit_error:  # noqa: BLE001 - the job's own error is the one to raise
        log.error("could not record the failed run %s: %s", context.run_id, audit_error)


def _begin(
    lock: str | None, session: SparkSession, config: SuiteConfig, context: RunContext, governance: Governance
) -> run_lock.Lease | None:
    """Record the run's start and take its lock at once: independent writes to tables of their own.

    A start that could not be recorded is the error raised (the lock, if taken, is given back); a lock that
    could not be taken is recorded as the run's failure, then raised.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-start") as pool:
        recorded = pool.submit(governance.started)
        try:
            lease = _lock(lock, session, config, context, governance)
        except BaseException as error:
            recorded.result()
            _failed(governance, context, error)
            raise
        try:
            recorded.result()
        except BaseException:
            _release(lease, context.run_id)
            raise
    return lease


def run_job(
    name: str,
    config: SuiteConfig,
    spark: SparkSession | None = None,
    context: RunContext | None = None,
) -> JobResult:
    """Run job ``name`` with ``config``.

    Args:
        name: a job of :data:`etl_lib.runtime.registry.JOBS`.
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
    lease = _begin(spec.lock_for(config), session, config, context, governance)
    try:
        try:
            with task_scope(context.lineage, name):
                result = function(session, config, context)
        except BaseException as error:
            _failed(governance, context, error)
            raise
        result.metrics.setdefault("duration_seconds", round(time.monotonic() - started, 2))
        governance.finished(result, None)
    finally:
        # Released once the run's end is recorded: a run killed before that leaves a lock the next one takes over.
        _release(lease, context.run_id)
    log.info("job %s run %s succeeded", name, context.run_id)
    return result
