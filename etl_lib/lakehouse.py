"""Delta tables of the lakehouse: what versions they are at and what their commits did.

This is I/O: it reads Delta logs. Transforms never import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Commit:
    """One Delta commit, with the metrics Delta recorded for it."""

    version: int
    operation: str
    metrics: dict[str, str]

    @property
    def rows_written(self) -> int:
        """Rows the commit added (inserted or updated rows for MERGE)."""
        metrics = self.metrics
        if "numOutputRows" in metrics:
            return int(metrics["numOutputRows"])
        return sum(int(metrics.get(key, 0)) for key in ("numTargetRowsInserted", "numTargetRowsUpdated"))


def is_delta_table(spark: SparkSession, path: str) -> bool:
    """True if ``path`` holds a Delta table."""
    return bool(DeltaTable.isDeltaTable(spark, path))


def current_version(spark: SparkSession, path: str) -> int | None:
    """Latest version of the table at ``path``, or None if there is no table yet."""
    if not is_delta_table(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else int(row["version"])


def commits_since(spark: SparkSession, path: str, after_version: int | None) -> list[Commit]:
    """Commits of the table at ``path`` newer than ``after_version`` (all of them when None), oldest first."""
    if not is_delta_table(spark, path):
        return []
    history = DeltaTable.forPath(spark, path).history().select("version", "operation", "operationMetrics")
    if after_version is not None:
        history = history.where(history.version > after_version)
    # The history of one run is a handful of rows, not table data.
    rows = history.orderBy("version").collect()
    return [Commit(int(row["version"]), str(row["operation"]), dict(row["operationMetrics"] or {})) for row in rows]


def append_available_now(frame: DataFrame, path: str, checkpoint: str, query_name: str) -> None:
    """Append everything ``frame`` (a stream) has available now to the Delta table at ``path``, then stop.

    The checkpoint records what was read and the Delta sink records which batch it committed, so a
    rerun after a crash neither skips nor repeats rows.
    """
    query = (
        frame.writeStream.format("delta")
        .queryName(query_name)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(path)
    )
    query.awaitTermination()
