"""The jobs the suite runs, by name. ``etl-suite run``, ``jobs/*.py`` and notebooks all look here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from etl_lib.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from etl_lib.config import SuiteConfig
    from etl_lib.core.run import JobResult, RunContext

    JobFunction = Callable[[SparkSession, SuiteConfig, RunContext], JobResult]


@dataclass(frozen=True)
class JobOption:
    """A command-line option of a job; it is sugar for ``--set KEY=VALUE``."""

    flag: str
    key: str
    help: str
    switch: bool = False


@dataclass(frozen=True)
class JobSpec:
    """A runnable job: its name, the library function it calls and its own options."""

    name: str
    target: str
    summary: str
    options: tuple[JobOption, ...] = ()
    #: The lock a run holds while it runs (see :mod:`etl_lib.runtime.run_lock`): jobs naming the same lock never
    #: run at once on a lakehouse. ``batch``: the jobs landing extracts into bronze. ``speed``: the streaming job,
    #: whose checkpoints a second copy would share (a lease it renews for as long as it runs).
    lock: str | None = None
    #: ``(layer/name, lock)``: a table-level job (``run.table``) on one of these tables holds that table's writer's
    #: lock instead.
    table_locks: tuple[tuple[str, str], ...] = ()

    def lock_for(self, config: SuiteConfig) -> str | None:
        """The lock a run of this job on ``config`` holds (None: none)."""
        return dict(self.table_locks).get(config.run.table or "", self.lock)

    def load(self) -> JobFunction:
        """Import the job's function (``module:function``)."""
        module_name, _, attribute = self.target.partition(":")
        return cast("JobFunction", getattr(importlib.import_module(module_name), attribute))


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            name="batch_layer",
            target="etl_lib.jobs.batch_layer:batch_layer",
            summary="Extracts to bronze, silver (order lines, products, customers SCD2) and gold, incrementally.",
            lock="batch",
            options=(
                JobOption(
                    "--process-date",
                    "run.process_date",
                    "business date YYYY-MM-DD the gold tables are computed as of (default: today, UTC)",
                ),
            ),
        ),
        JobSpec(
            name="speed_layer",
            target="etl_lib.jobs.speed_layer:speed_layer",
            summary="Events from Kafka, Kinesis or files into bronze, silver and real-time gold views, exactly once.",
            lock="speed",
            options=(
                JobOption(
                    "--available-now",
                    "run.available_now",
                    "process everything the stream holds now, then stop (default: run until stopped)",
                    switch=True,
                ),
            ),
        ),
        JobSpec(
            name="quality_replay",
            target="etl_lib.jobs.quality_replay:replay_job",
            summary="Check a table's quarantined rows again and merge those that now pass into the table.",
            options=(JobOption("--table", "run.table", "the table, as layer/name (e.g. silver/order_lines)"),),
            # The running speed layer keeps the ids of silver's events it judges a batch against: rows merged into
            # that table beside it would be unknown to it, so a replay there waits for the speed layer's lock.
            table_locks=(("silver/events", "speed"),),
        ),
        JobSpec(
            name="train_models",
            target="etl_lib.jobs.ml:train_models",
            summary="Train the purchase Isolation Forest and the churn models; log and register them in MLflow.",
        ),
        JobSpec(
            name="score",
            target="etl_lib.jobs.ml:score",
            summary="Score churn (gold/churn_scores, retention campaign) and purchase anomalies with the champions.",
        ),
        JobSpec(
            name="reconcile",
            target="etl_lib.jobs.reconcile:reconcile",
            summary="Serving views over batch and speed results; speed reconciled with a batch recomputation.",
        ),
        JobSpec(
            name="publish_products",
            target="etl_lib.jobs.publish_products:publish_products",
            summary="Publish each domain's data products: table, catalog row, data contract, catalog registration.",
        ),
        JobSpec(
            name="dispatch_fulfillment",
            target="etl_lib.jobs.dispatch_fulfillment:dispatch_fulfillment",
            summary="Start a Step Functions execution per pending fulfilment request of the outbox; record each.",
            # One relay at a time: two would race to write the same requests' outcomes.
            lock="fulfillment",
        ),
        JobSpec(
            name="ingest_files",
            target="etl_lib.jobs.ingest:ingest_files",
            summary="Land every configured file source into its bronze Delta table, new files only.",
            lock="batch",
        ),
    )
}


def get_job(name: str) -> JobSpec:
    """The job called ``name``.

    Raises:
        UsageError: naming the known jobs, if there is no such job.
    """
    try:
        return JOBS[name]
    except KeyError:
        raise UsageError(f"unknown job {name!r}; known jobs: {', '.join(sorted(JOBS))}") from None
