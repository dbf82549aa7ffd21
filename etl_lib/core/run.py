"""What a job run knows about itself (ids and clocks, injected) and what it reports back."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from etl_lib.config import Layer
from etl_lib.core.capture import LineageRecorder


@dataclass(frozen=True)
class Commit:
    """One Delta commit, with the metrics Delta recorded for it and the suite's own metadata."""

    version: int
    operation: str
    metrics: dict[str, str]
    user_metadata: dict[str, Any]
    #: When it was committed (as the session's clock gives it).
    timestamp: Any = None

    @property
    def batch_id(self) -> int:
        """The micro-batch of a streaming query the commit belongs to (:func:`commit_metadata`), -1 if none."""
        return int(self.user_metadata.get("batch_id", -1))

    @property
    def rows_written(self) -> int:
        """Rows the commit added or rewrote with new values (inserted, updated, deleted rows for MERGE)."""
        metrics = self.metrics
        if self.operation == "MERGE":
            keys = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")
            return sum(int(metrics.get(key, 0)) for key in keys)
        if "numOutputRows" in metrics:
            return int(metrics["numOutputRows"])
        return 0


def utc_now() -> dt.datetime:
    """The current time, UTC, microsecond precision (what Spark timestamps hold)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RunContext:
    """Identity and clock of one run. Transforms take values from here, never from the wall clock."""

    job: str
    run_id: str
    run_time: dt.datetime
    #: The clock for times taken during the run (a streaming micro-batch's, say).
    clock: Callable[[], dt.datetime] = utc_now
    #: Set to ask a long-running job to finish its current work and stop (signals set it too).
    stop: threading.Event = field(default_factory=threading.Event, compare=False)
    #: What the run's tasks read, for lineage.
    lineage: LineageRecorder = field(default_factory=LineageRecorder, compare=False)

    @classmethod
    def new(
        cls,
        job: str,
        clock: Callable[[], dt.datetime] = utc_now,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> RunContext:
        """A context for a fresh run of ``job``; tests pass their own ``clock`` and ``new_id``.

        Args:
            job: the job's name.
            clock: the current time, UTC; it gives the run's time and the times taken during the run.
            new_id: a new run id (a random UUID by default).
        """
        return cls(job=job, run_id=new_id(), run_time=clock(), clock=clock)


@dataclass(frozen=True)
class TableWrite:
    """One table a job wrote to, with the Delta version its commit made (None if it wrote nothing)."""

    layer: Layer
    table: str
    path: str
    rows_written: int
    version: int | None
    #: This run's commits to the table, oldest first, when the job read them from Delta's history (lineage
    #: then need not read it again); None when not known.
    commits: tuple[Commit, ...] | None = field(default=None, compare=False, repr=False)


@dataclass
class JobResult:
    """What a job did. A job that fails raises; a result always describes a successful run."""

    job: str
    run_id: str
    writes: list[TableWrite] = field(default_factory=list)
    metrics: dict[str, int | float | str] = field(default_factory=dict)
    status: Literal["succeeded"] = "succeeded"

    def summary(self) -> str:
        """A few aligned lines for a terminal."""
        lines = [f"{self.job} {self.status} (run {self.run_id})"]
        if self.writes:
            width = max(len(f"{w.layer}/{w.table}") for w in self.writes)
            for write in self.writes:
                version = "-" if write.version is None else str(write.version)
                name = f"{write.layer}/{write.table}"
                lines.append(f"  {name:<{width}}  {write.rows_written:>10,} rows  version {version:>4}  {write.path}")
        for key, value in sorted(self.metrics.items()):
            lines.append(f"  {key}: {value}")
        return "\n".join(lines)


def run_metadata(context: RunContext, task: str, **extra: object) -> dict[str, object]:
    """The metadata every Delta commit of a run carries: run, job, task, and what the task adds."""
    return {"run_id": context.run_id, "job": context.job, "task": task, **extra}
