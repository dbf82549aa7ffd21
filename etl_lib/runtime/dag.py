"""Run a job's independent steps concurrently on one Spark application, each failure kept apart.

A task runs when every task it depends on has succeeded; a task whose dependency failed is skipped,
and independent tasks go on. Each task gets a session of its own (``newSession``: same Spark
application, its own SQL settings), so per-task settings such as commit metadata cannot leak.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import SparkSession

from etl_lib.core.capture import LineageRecorder, task_scope
from etl_lib.core.run import TableWrite
from etl_lib.errors import EtlSuiteError, JobFailedError, explain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """A step of a job: a name, what it runs, and the names of the tasks it needs first."""

    name: str
    run: Callable[[SparkSession], list[TableWrite]]
    depends_on: tuple[str, ...] = ()


@dataclass
class TaskOutcome:
    """How a task ended."""

    name: str
    status: Literal["succeeded", "failed", "skipped"]
    seconds: float = 0.0
    writes: list[TableWrite] = field(default_factory=list)
    error: str | None = None
    #: The exit code a failure asks for (a suite error's own; 1 for anything else).
    exit_code: int = 0


def _check(tasks: Sequence[Task]) -> None:
    names = [task.name for task in tasks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"task names must be unique: {', '.join(duplicates)}")
    for task in tasks:
        unknown = [dep for dep in task.depends_on if dep not in names]
        if unknown:
            raise ValueError(f"task {task.name} depends on unknown {', '.join(unknown)}")
    remaining = {task.name: set(task.depends_on) for task in tasks}
    while remaining:
        ready = [name for name, deps in remaining.items() if not deps]
        if not ready:
            raise ValueError(f"tasks depend on each other in a cycle: {', '.join(sorted(remaining))}")
        for name in ready:
            del remaining[name]
        for deps in remaining.values():
            deps.difference_update(ready)


def child_session(spark: SparkSession) -> SparkSession:
    """A session of the same application with the same runtime SQL settings, changed independently."""
    session = spark.newSession()
    for row in spark.sql("SET").collect():
        key, value = str(row["key"]), str(row["value"])
        if spark.conf.isModifiable(key):
            session.conf.set(key, value)
    return session


def _run_one(spark: SparkSession, task: Task, recorder: LineageRecorder | None) -> TaskOutcome:
    if recorder is not None:
        with task_scope(recorder, task.name):
            return _run_one(spark, task, None)
    session = child_session(spark)
    session.sparkContext.setJobGroup(task.name, task.name, interruptOnCancel=False)
    started = time.monotonic()
    try:
        writes = task.run(session)
    except Exception as error:  # noqa: BLE001 - recorded, reported and turned into a failed run
        log.error("task %s failed: %s", task.name, error)
        return TaskOutcome(
            task.name,
            "failed",
            time.monotonic() - started,
            error=f"{explain(error)}\n{traceback.format_exc()}",
            exit_code=error.exit_code if isinstance(error, EtlSuiteError) else 1,
        )
    log.info("task %s done in %.1fs", task.name, time.monotonic() - started)
    return TaskOutcome(task.name, "succeeded", time.monotonic() - started, writes=writes)


def run_tasks(
    spark: SparkSession, tasks: Sequence[Task], max_workers: int, recorder: LineageRecorder | None = None
) -> list[TaskOutcome]:
    """Run ``tasks`` respecting their dependencies, at most ``max_workers`` at a time.

    The reads of each task are recorded for lineage under its name when a ``recorder`` is given.

    Args:
        spark: the session; each task runs in a child session of it.
        tasks: the tasks, with unique names; a task's dependencies are named among them.
        max_workers: the most tasks running at once (threads).
        recorder: records each task's reads for lineage; None records nothing.

    Returns:
        One outcome per task, in the order the tasks were given.

    Raises:
        ValueError: for duplicate names, unknown dependencies or a cycle (before anything runs).
    """
    _check(tasks)
    outcomes: dict[str, TaskOutcome] = {}
    waiting = list(tasks)
    running: dict[Future[TaskOutcome], str] = {}
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="etl-task") as pool:
        while waiting or running:
            for task in list(waiting):
                states = [outcomes[dep].status if dep in outcomes else None for dep in task.depends_on]
                if any(state in ("failed", "skipped") for state in states):
                    waiting.remove(task)
                    blocked = [
                        dep for dep in task.depends_on if outcomes.get(dep) and outcomes[dep].status != "succeeded"
                    ]
                    outcomes[task.name] = TaskOutcome(
                        task.name, "skipped", error=f"not run: {', '.join(blocked)} did not succeed"
                    )
                elif all(state == "succeeded" for state in states):
                    waiting.remove(task)
                    running[pool.submit(_run_one, spark, task, recorder)] = task.name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes[outcome.name] = outcome
                del running[future]
    return [outcomes[task.name] for task in tasks]


def raise_for_failures(outcomes: Sequence[TaskOutcome]) -> None:
    """Fail the job, naming every task that failed or was skipped, if any did.

    Raises:
        JobFailedError: with each failure's error.
    """
    bad = [outcome for outcome in outcomes if outcome.status != "succeeded"]
    if not bad:
        return
    lines = [f"{len(bad)} of {len(outcomes)} tasks did not succeed:"]
    for outcome in bad:
        first_line = (outcome.error or "").splitlines()[0] if outcome.error else ""
        lines.append(f"  {outcome.name}: {outcome.status}: {first_line}")
    failure = JobFailedError("\n".join(lines))
    codes = {outcome.exit_code for outcome in bad if outcome.status == "failed"}
    if len(codes) == 1:
        # Every failure asks for the same exit (a source that cannot be reached: try later): the job does too.
        failure.exit_code = codes.pop()
    raise failure
