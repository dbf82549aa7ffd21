"""``audit/lineage_events``: what each task of a run read and wrote, with versions and row counts.

Reads come from the recorder; writes from the Delta commits the run made (each names its run and task),
with row counts from Delta's own commit metrics. A write's inputs are what its task read.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from pyspark.sql import SparkSession

from etl_lib.config import LAYERS, SuiteConfig
from etl_lib.core.capture import Read
from etl_lib.core.run import Commit, JobResult, RunContext, TableWrite
from etl_lib.io import lakehouse

LINEAGE_SCHEMA = (
    "run_id STRING, job STRING, task STRING, kind STRING, dataset STRING, version BIGINT, `rows` BIGINT, "
    "operation STRING, inputs ARRAY<STRUCT<dataset: STRING, version: BIGINT>>, event_time TIMESTAMP"
)


@dataclass(frozen=True)
class LineageEvent:
    """One read or write of a task."""

    task: str
    kind: str
    dataset: str
    version: int | None
    rows: int | None
    operation: str | None
    inputs: tuple[tuple[str, int | None], ...]


def dataset_name(location: str, root: str) -> str:
    """``layer/table`` for a table of the lakehouse, the location itself for anything else."""
    prefix = root.rstrip("/") + "/"
    if location.startswith(prefix):
        parts = location[len(prefix) :].strip("/").split("/")
        if len(parts) == 2 and parts[0] in LAYERS:
            return f"{parts[0]}/{parts[1]}"
    return location


def collect(
    spark: SparkSession, config: SuiteConfig, context: RunContext, result: JobResult, reads: list[Read]
) -> list[LineageEvent]:
    """The lineage events of a finished run."""
    root = config.lakehouse.root
    resolved: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
    events: list[LineageEvent] = []
    at_end: dict[str, int | None] = {}  # a table several streams read is looked up once
    for read in reads:
        version = read.version
        name = dataset_name(read.dataset, root)
        if version is None and name != read.dataset:
            # A stream of a lakehouse table read up to the table's version at the end of the run.
            if read.dataset not in at_end:
                at_end[read.dataset] = lakehouse.current_version(spark, read.dataset)
            version = at_end[read.dataset]
        resolved[read.task].append((name, version))
        events.append(LineageEvent(read.task, "read", name, version, None, None, ()))
    writes_of: dict[str, list[TableWrite]] = defaultdict(list)
    for write in result.writes:
        writes_of[write.path].append(write)
    for path, writes in writes_of.items():
        known = [write.commits for write in writes]
        if all(commits is not None for commits in known):  # the job read its commits already
            unique = {c.version: c for commits in known for c in commits or ()}
            mine = [unique[version] for version in sorted(unique)]
        else:
            mine = [
                c for c in lakehouse.commits_since(spark, path, None) if c.user_metadata.get("run_id") == context.run_id
            ]
        by_task: dict[str, list[Commit]] = defaultdict(list)
        for commit in mine:
            by_task[str(commit.user_metadata.get("task", context.job))].append(commit)
        name = dataset_name(path, root)
        for task, commits in by_task.items():
            inputs = tuple(sorted((d, v) for d, v in resolved.get(task, []) if d != name))
            events.append(
                LineageEvent(
                    task,
                    "write",
                    name,
                    max(c.version for c in commits),
                    sum(c.rows_written for c in commits),
                    commits[-1].operation,
                    inputs,
                )
            )
    return events


def write(
    spark: SparkSession, config: SuiteConfig, context: RunContext, found: list[LineageEvent], at: dt.datetime
) -> None:
    """Append the events to ``audit/lineage_events`` (retrying over concurrent writers)."""
    if not found:
        return
    rows = [
        (
            context.run_id,
            context.job,
            e.task,
            e.kind,
            e.dataset,
            e.version,
            e.rows,
            e.operation,
            [{"dataset": d, "version": v} for d, v in e.inputs],
            at,
        )
        for e in found
    ]
    frame = spark.createDataFrame(rows, LINEAGE_SCHEMA)
    lakehouse.append_retrying(frame, config.lakehouse.table_path("audit", "lineage_events"))
