"""Delta tables of the lakehouse: creating, appending, merging, streaming, and reading their history.

This is the I/O side of the suite: paths, formats, checkpoints and triggers live here. Transforms never
import it. Every commit the suite makes carries a JSON ``userMetadata`` (run id, job, the versions of
the tables it read), which is how later runs know what they already consumed and how lineage is kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import StructType

from etl_lib.config import Layer
from etl_lib.core.capture import record_read, recording
from etl_lib.core.run import Commit, TableWrite

log = logging.getLogger(__name__)

USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"

#: Deletion vectors stay off so that every table stays readable by the deltalake package (DuckDB and
#: Spark read them). Sessions default to it too (see ``etl_lib.runtime.session``).
PORTABLE_TABLE_PROPERTIES = {
    "delta.enableDeletionVectors": "false",
}

#: The characters Delta refuses in a column name unless the table maps its columns by name.
_UNMAPPED_REFUSED = frozenset(" ,;{}()\n\t=")
#: Columns mapped by name (reader version 2, writer version 5): a column is stored under a physical name of Delta's
#: and read under its own, whatever its characters. Spark, the deltalake package and DuckDB read such tables.
COLUMN_MAPPING_PROPERTIES = {
    "delta.columnMapping.mode": "name",
    "delta.minReaderVersion": "2",
    "delta.minWriterVersion": "5",
}


def needs_column_mapping(columns: Sequence[str]) -> bool:
    """Whether a table of ``columns`` can keep their names only with Delta's column mapping (a space, a comma...)."""
    return any(_UNMAPPED_REFUSED & set(name) for name in columns)


def _parse_user_metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


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
    """Commits of the table at ``path`` newer than ``after_version`` (all of them when None), oldest first.

    With ``after_version`` only the commit files after it are read, so the cost follows the commits asked
    for, not the age of the table.
    """
    return _commits_and_version(spark, path, after_version)[0]


def _commits_and_version(spark: SparkSession, path: str, after_version: int | None) -> tuple[list[Commit], int | None]:
    """:func:`commits_since`, and the table's latest version (None when there is no table)."""
    if not is_delta_table(spark, path):
        return [], None
    table = DeltaTable.forPath(spark, path)
    if after_version is None:
        commits = _commits(table.history())
        return commits, commits[-1].version if commits else None
    row = table.history(1).select("version").first()
    latest = None if row is None else int(row["version"])
    newer = 0 if latest is None else latest - after_version
    if newer <= 0:
        return [], latest
    return _commits(table.history(newer).where(f"version > {int(after_version)}")), latest


def _commits(history: DataFrame) -> list[Commit]:
    """The rows of a Delta history as commits, oldest first."""
    columns = history.select("version", "operation", "operationMetrics", "userMetadata", "timestamp")
    # A few rows, ordered here: Spark's sort would sample them first (two more jobs).
    rows = sorted(columns.collect(), key=lambda row: int(row["version"]))
    return [
        Commit(
            int(row["version"]),
            str(row["operation"]),
            dict(row["operationMetrics"] or {}),
            _parse_user_metadata(row["userMetadata"]),
            row["timestamp"],
        )
        for row in rows
    ]


def writes_of_run(
    spark: SparkSession, layer: Layer, table: str, path: str, before: int | None, run_id: str
) -> TableWrite:
    """What run ``run_id`` committed to ``path`` since version ``before``, from Delta's own commit metrics.

    Args:
        spark: the session.
        layer: the table's layer, for the result.
        table: the table's name, for the result.
        path: the table.
        before: the table's version before the run wrote to it; None when there was no table yet.
        run_id: the run whose commits count (the ``run_id`` of their metadata).
    """
    # One look at the table's log for both: a run that wrote nothing (a rerun) pays it once, not twice.
    since, latest = _commits_and_version(spark, path, before)
    commits = [c for c in since if c.user_metadata.get("run_id") == run_id]
    version = commits[-1].version if commits else latest
    return TableWrite(layer, table, path, sum(c.rows_written for c in commits), version, tuple(commits))


def _newest_commits(spark: SparkSession, path: str, depth: int = 20) -> Iterator[list[Commit]]:
    """The newest ``depth`` commits of ``path`` (oldest first), then ten times as many, ..., up to its whole history.

    A table that takes a commit every second is not read back to its first commit to find one a few versions old.
    """
    if not is_delta_table(spark, path):
        return
    table = DeltaTable.forPath(spark, path)
    while True:
        commits = _commits(table.history(depth))
        yield commits
        if len(commits) < depth:
            return
        depth *= 10


def newest_commits(spark: SparkSession, path: str, count: int) -> list[Commit]:
    """The newest ``count`` commits of ``path``, oldest first (none when there is no table): read from its log."""
    return next(_newest_commits(spark, path, count), [])


def last_commit_where(
    spark: SparkSession, path: str, predicate: Callable[[Commit], bool], depth: int = 20
) -> Commit | None:
    """The newest commit of ``path`` whose suite metadata satisfies ``predicate``.

    The newest ``depth`` commits are read first, then ten times as many, and so on until one matches or
    the history ends (:func:`_newest_commits`).

    Args:
        spark: the session.
        path: the table; None comes back when there is no table there.
        predicate: true for a commit that is wanted (it reads ``commit.user_metadata``).
        depth: commits read first.
    """
    for commits in _newest_commits(spark, path, depth):
        for commit in reversed(commits):
            if predicate(commit):
                return commit
    return None


def holds_batch(spark: SparkSession, path: str, query_id: str, batch_id: int) -> bool:
    """Whether the table at ``path`` already has a commit of micro-batch ``batch_id`` of query ``query_id``.

    A query's commits carry its id and their batch's (:func:`commit_metadata`) and come in batch order, so
    its newest commit says it: a crash between a batch's writes leaves some tables holding the batch and
    others not, and the replay of the batch writes only to those that do not.

    Args:
        spark: the session.
        path: the table.
        query_id: the streaming query's id (``StreamingQuery.id``, the same across restarts).
        batch_id: the micro-batch.
    """
    newest = last_commit_where(spark, path, lambda commit: commit.user_metadata.get("query_id") == query_id)
    return newest is not None and newest.batch_id >= batch_id


def query_commits_after(spark: SparkSession, path: str, query_id: str, batch_id: int) -> list[Commit]:
    """The commits of streaming query ``query_id`` to ``path`` for its micro-batches after ``batch_id``, oldest first.

    A query's commits come in batch order, so the newest ones are read (:func:`_newest_commits`) until a
    commit of the query for ``batch_id`` or an earlier batch turns up.

    Args:
        spark: the session.
        path: the table.
        query_id: the streaming query's id (``StreamingQuery.id``, the same across restarts).
        batch_id: the newest micro-batch not wanted; -1 for all of the query's commits.
    """
    ours: list[Commit] = []
    for commits in _newest_commits(spark, path):
        ours = [commit for commit in commits if commit.user_metadata.get("query_id") == query_id]
        if any(commit.batch_id <= batch_id for commit in ours):
            break
    return [commit for commit in ours if commit.batch_id > batch_id]


@contextmanager
def commit_metadata(spark: SparkSession, metadata: Mapping[str, Any]) -> Iterator[None]:
    """Attach ``metadata`` (as JSON) to every Delta commit ``spark`` makes inside the block.

    The setting belongs to the session, so concurrent writers each use a session of their own
    (``spark.newSession()``).
    """
    previous = spark.conf.get(USER_METADATA_CONF, None)
    spark.conf.set(USER_METADATA_CONF, json.dumps(dict(metadata), sort_keys=True, default=str))
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(USER_METADATA_CONF)
        else:
            spark.conf.set(USER_METADATA_CONF, previous)


def ensure_table(
    spark: SparkSession,
    path: str,
    schema: StructType,
    properties: Mapping[str, str] | None = None,
    partition_by: Sequence[str] = (),
) -> None:
    """Create the Delta table at ``path`` empty, with ``schema``, if it does not exist yet.

    Args:
        spark: the session.
        path: the table.
        schema: the new table's columns.
        properties: Delta table properties, over :data:`PORTABLE_TABLE_PROPERTIES`; None for only those.
        partition_by: the new table's partition columns; empty for none.
    """
    if is_delta_table(spark, path):
        # Delta would plan and run its create command only to find the table there: a tenth of a second, which a
        # speed-layer micro-batch paid once per MERGE.
        return
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    for key, value in {**PORTABLE_TABLE_PROPERTIES, **(properties or {})}.items():
        builder = builder.property(key, value)
    builder.execute()


def add_columns(spark: SparkSession, path: str, wanted: StructType, name: str) -> list[str]:
    """Give the table at ``path`` the top-level columns of ``wanted`` it lacks (nullable; earlier rows null).

    A column the table has with another type is not changed in place: that would rewrite or misread every
    row written before.

    Args:
        spark: the session.
        path: the table, which exists.
        wanted: the columns the table should have (only the top-level ones are compared).
        name: what the error names as the source of ``wanted`` (``entities.events against silver/events``).

    Returns:
        The columns added, as ``name type``.

    Raises:
        ConfigError: naming ``name``, the column, its type in the table and the type wanted.
    """
    from etl_lib.errors import ConfigError

    have = {field.name: field for field in DeltaTable.forPath(spark, path).toDF().schema.fields}
    changed = [
        f"{field.name} is {have[field.name].dataType.simpleString()} in the table, "
        f"{field.dataType.simpleString()} in the configuration"
        for field in wanted.fields
        # Compared as DDL text: the nullability of nested fields is not a change of type.
        if field.name in have and have[field.name].dataType.simpleString() != field.dataType.simpleString()
    ]
    if changed:
        raise ConfigError(
            f"{name}: a column's type cannot change in place ({'; '.join(changed)}): declare the new type under "
            "a new column name, or rebuild the table from bronze"
        )
    missing = [field for field in wanted.fields if field.name not in have]
    if missing:
        columns = ", ".join(f"`{f.name.replace('`', '``')}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path.replace('`', '``')}` ADD COLUMNS ({columns})")
    return [f"{field.name} {field.dataType.simpleString()}" for field in missing]


def read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """The table at ``path`` (as of ``version`` when given); the read is noted for lineage."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    if recording():
        record_read(path, version if version is not None else current_version(spark, path))
    return reader.load(path)


def append(
    frame: DataFrame,
    path: str,
    idempotency: tuple[str, int] | None = None,
    partition_by: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Append ``frame`` to the table at ``path``.

    Args:
        frame: rows to append.
        path: the table.
        idempotency: ``(application id, version)``: Delta skips the append if that application already
            committed that version or a later one, so a retried micro-batch is not written twice.
        partition_by: partition columns, for a table this append creates.
        metadata: this commit's own metadata, in place of the session's (:func:`commit_metadata`).
    """
    writer = frame.write.format("delta").mode("append")
    if metadata is not None:
        writer = writer.option("userMetadata", json.dumps(dict(metadata), sort_keys=True, default=str))
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if idempotency is not None:
        writer = writer.option("txnAppId", idempotency[0]).option("txnVersion", str(idempotency[1]))
    writer.save(path)


def _same_keys(keys: Sequence[str]) -> str:
    """A MERGE's condition: the target ``t`` and the source ``s`` agree on every key (a null matching a null)."""
    return " AND ".join(f"t.`{key}` <=> s.`{key}`" for key in keys)


def insert_new(spark: SparkSession, path: str, frame: DataFrame, keys: list[str]) -> None:
    """MERGE ``frame`` into ``path``, inserting only rows whose ``keys`` are not there yet.

    Re-running it with the same rows changes nothing, which is what makes a replayed batch harmless.

    Args:
        spark: the session.
        path: the table; created with ``frame``'s schema if it does not exist.
        frame: the rows to insert.
        keys: the columns that identify a row (a null matches a null).
    """
    ensure_table(spark, path, frame.schema)
    condition = _same_keys(keys)
    retrying_conflicts(
        lambda: (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(frame.alias("s"), condition)
            .whenNotMatchedInsertAll()
            .execute()
        ),
        path,
    )


def update_rows(
    spark: SparkSession, path: str, rows: DataFrame, keys: list[str], unchanged: Sequence[str] = ()
) -> None:
    """Set, on the table's rows of each key of ``rows``, the other columns of ``rows``, in one MERGE.

    Keys the table does not hold are left out; no row is inserted or deleted. With ``unchanged``, a row is set
    only where each of those columns still holds what ``rows`` says it held when it was read (its ``_was_<column>``,
    which is not written): a row another writer changed since is left as that writer left it. Retried when a
    concurrent writer's commit got in first, which that condition makes safe for values computed from the table.

    Args:
        spark: the session.
        path: the table, which exists and has every column of ``rows`` but the ``_was_`` ones.
        rows: the keys, the values to set and ``_was_<column>`` of each column of ``unchanged``, one row per key.
        keys: the columns that identify a row.
        unchanged: columns whose value must not have changed since ``rows`` was computed.
    """
    condition = _same_keys(keys)
    was = {f"_was_{column}" for column in unchanged}
    still = " AND ".join(f"t.`{column}` <=> s.`_was_{column}`" for column in unchanged) or None
    assignments: dict[str, str | Column] = {
        f"`{name}`": f"s.`{name}`" for name in rows.columns if name not in keys and name not in was
    }
    retrying_conflicts(
        lambda: (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(rows.alias("s"), condition)
            .whenMatchedUpdate(condition=still, set=assignments)
            .execute()
        ),
        path,
    )


ACTION = "_action"


def apply_changes(spark: SparkSession, path: str, changes: DataFrame, keys: list[str]) -> None:
    """MERGE a change set into ``path``: each row's ``_action`` is ``insert``, ``update`` or ``delete``.

    Only the rows named in ``changes`` are touched; the change set comes from
    :func:`etl_lib.layers.changes.diff_rows`.

    Args:
        spark: the session.
        path: the table; created with the schema of ``changes`` (without ``_action``) if it does not exist.
        changes: the table's columns and ``_action``, one row per key changed.
        keys: the columns that identify a row (a null matches a null).
    """
    columns = [name for name in changes.columns if name != ACTION]
    ensure_table(spark, path, changes.drop(ACTION).schema)
    condition = _same_keys(keys)
    assignments: dict[str, str | Column] = {f"`{name}`": f"s.`{name}`" for name in columns}
    # The change set is usually derived from the table itself (a diff against it): kept once computed, so
    # that the MERGE's two passes (finding the files to touch, then writing) do not compute it twice.
    changes = changes.persist()
    try:
        # Not retried on a conflict: the change set was computed against the table as it was; applied to
        # the table as another writer left it, it could undo that writer's rows.
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(changes.alias("s"), condition)
            .whenMatchedDelete(condition=f"s.{ACTION} = 'delete'")
            .whenMatchedUpdate(condition=f"s.{ACTION} = 'update'", set=assignments)
            .whenNotMatchedInsert(condition=f"s.{ACTION} = 'insert'", values=assignments)
            .execute()
        )
    finally:
        changes.unpersist()


def append_available_now(frame: DataFrame, path: str, checkpoint: str, query_name: str) -> None:
    """Append everything ``frame`` (a stream) has available now to the Delta table at ``path``, then stop.

    The checkpoint records what was read and the Delta sink records which batch it committed, so a
    rerun after a crash neither skips nor repeats rows.

    Args:
        frame: the streaming DataFrame.
        path: the table.
        checkpoint: the query's checkpoint folder (its offsets and commits: where a rerun goes on from).
        query_name: the query's name, as Spark's progress reports give it.
    """
    query = (
        frame.writeStream.format("delta")
        .queryName(query_name)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(path)
    )
    query.awaitTermination()


def read_stream(spark: SparkSession, path: str) -> DataFrame:
    """A stream of the rows appended to the Delta table at ``path``.

    Commits that only change existing rows (a MERGE that updates, a compaction) are skipped, so an
    upstream table that is mostly appended to can still feed its consumers incrementally.
    """
    # A stream reads up to the newest version when its run ends; lineage resolves it then.
    record_read(path, None)
    return spark.readStream.format("delta").option("skipChangeCommits", "true").load(path)


class BatchHandler:
    """A ``foreachBatch`` function that keeps the error it raised, so the job can raise it as it was.

    Spark reports an error of a micro-batch as a ``StreamingQueryException`` carrying a traceback as text;
    :meth:`reraise` turns it back into the suite's own exception (a quality failure, say).
    """

    def __init__(self, handle: Callable[[DataFrame, int], None]) -> None:
        self.handle = handle
        self.error: BaseException | None = None

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        try:
            self.handle(frame, batch_id)
        except BaseException as error:
            self.error = error
            raise

    def reraise(self, failure: BaseException) -> None:
        """Raise the handler's own error if it caused ``failure``, else ``failure``."""
        if self.error is not None:
            raise self.error from failure
        raise failure


def start_foreach_batch(
    frame: DataFrame,
    checkpoint: str,
    query_name: str,
    handler: BatchHandler,
    trigger: dict[str, Any],
) -> StreamingQuery:
    """Start ``frame`` (a stream) with ``handler`` called on every micro-batch, and return the running query.

    Args:
        frame: the streaming DataFrame.
        checkpoint: the query's checkpoint folder (its offsets and commits: where a restart goes on from).
        query_name: the query's name, as Spark's progress reports and the audit tables give it.
        handler: what each micro-batch runs; it keeps the error it raised for the caller.
        trigger: the keyword ``DataStreamWriter.trigger`` takes (``{"availableNow": True}``,
            ``{"processingTime": "1 second"}``).
    """
    return (
        frame.writeStream.queryName(query_name)
        .option("checkpointLocation", checkpoint)
        .foreachBatch(handler)
        .trigger(**trigger)
        .start()
    )


def foreach_batch_available_now(
    frame: DataFrame,
    checkpoint: str,
    query_name: str,
    handle: Callable[[DataFrame, int], None],
) -> None:
    """Run ``handle(batch, batch_id)`` on everything ``frame`` (a stream) has available now, then stop.

    ``handle`` must be idempotent for a given ``batch_id``: after a crash the last batch is replayed. An
    error it raises ends the query and is raised here as it was raised.

    Args:
        frame: the streaming DataFrame.
        checkpoint: the query's checkpoint folder (its offsets and commits: where a rerun goes on from).
        query_name: the query's name, as Spark's progress reports and the audit tables give it.
        handle: what each micro-batch runs, given the batch's rows and its id.
    """
    handler = BatchHandler(handle)
    query = start_foreach_batch(frame, checkpoint, query_name, handler, {"availableNow": True})
    try:
        query.awaitTermination()
    except Exception as failure:  # noqa: BLE001 - re-raised, as the handler's own error when it is one
        handler.reraise(failure)


def checksum(spark: SparkSession, path: str, version: int | None = None) -> tuple[int, int]:
    """``(rows, digest)`` of a table's contents, independent of row order and file layout.

    The digest sums a 64-bit hash of every row, so two tables with the same rows have the same digest
    whatever their history; one aggregate row comes back to the driver.
    """
    from pyspark.sql import functions as F

    frame = read(spark, path, version)
    row = (
        frame.select(F.xxhash64(*frame.columns).cast("decimal(38,0)").alias("h"))
        .agg(F.count(F.lit(1)).alias("rows"), F.coalesce(F.sum("h"), F.lit(0)).alias("digest"))
        .first()
    )
    assert row is not None
    return int(row["rows"]), int(row["digest"])


TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"


@contextmanager
def idempotent(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Make the Delta writes (MERGE included) ``spark`` runs inside the block idempotent.

    Delta records ``(app_id, version)`` with the commit and skips a later write with a version not above
    the one recorded, which is how a replayed micro-batch changes nothing twice.
    """
    spark.conf.set(TXN_APP_ID_CONF, app_id)
    spark.conf.set(TXN_VERSION_CONF, str(version))
    try:
        yield
    finally:
        spark.conf.unset(TXN_APP_ID_CONF)
        spark.conf.unset(TXN_VERSION_CONF)


def merge_increments(
    spark: SparkSession,
    path: str,
    increments: DataFrame,
    keys: list[str],
    add: Sequence[str] = (),
    greatest: Sequence[str] = (),
    least: Sequence[str] = (),
    latest: Mapping[str, str] | None = None,
) -> None:
    """MERGE per-key increments into running totals.

    Matched rows add ``add`` columns, keep the greatest of ``greatest`` and the least of ``least``, and
    take each ``latest`` value column when its timestamp column is newer; new keys are inserted as they
    are. Wrap the call in :func:`idempotent` so that a replayed increment is not added twice.

    Args:
        spark: the session.
        path: the table of totals; created with the schema of ``increments`` if it does not exist.
        increments: one row per key: the keys and the columns named below.
        keys: the columns that identify a row (a null matches a null).
        add: columns summed (a null counts as 0).
        greatest: columns keeping the largest value.
        least: columns keeping the smallest value.
        latest: value column -> its timestamp column; the value with the newer non-null timestamp is kept.
    """
    ensure_table(spark, path, increments.schema)
    condition = _same_keys(keys)
    assignments: dict[str, str | Column] = {}
    for name in add:
        assignments[f"`{name}`"] = f"coalesce(t.`{name}`, 0) + coalesce(s.`{name}`, 0)"
    for name in greatest:
        assignments[f"`{name}`"] = f"greatest(t.`{name}`, s.`{name}`)"
    for name in least:
        assignments[f"`{name}`"] = f"least(t.`{name}`, s.`{name}`)"
    for value, at in (latest or {}).items():
        newer = f"(t.`{at}` IS NULL OR s.`{at}` > t.`{at}`) AND s.`{at}` IS NOT NULL"
        assignments[f"`{value}`"] = f"CASE WHEN {newer} THEN s.`{value}` ELSE t.`{value}` END"
        assignments[f"`{at}`"] = f"greatest(t.`{at}`, s.`{at}`)"
    retrying_conflicts(
        lambda: (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(increments.alias("s"), condition)
            .whenMatchedUpdate(set=assignments)
            .whenNotMatchedInsertAll()
            .execute()
        ),
        path,
    )


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is Delta saying a concurrent commit got in first (a retry may succeed)."""
    from delta.exceptions import DeltaConcurrentModificationException

    if isinstance(error, DeltaConcurrentModificationException):
        return True
    # Two writers creating the same table race on its first commit; Delta reports it in these words.
    text = str(error)
    return any(
        marker in text
        for marker in ("DELTA_CONCURRENT", "ConcurrentAppendException", "ProtocolChangedException", "already exists")
    )


def retrying_conflicts(
    write: Callable[[], object],
    path: str,
    attempts: int = 10,
    sleep: Callable[[float], None] | None = None,
) -> None:
    """Run ``write`` (one Delta commit to ``path``), again when a concurrent writer's commit got in first.

    A write that lost the race committed nothing, so running it again on the table as it now is loses and
    repeats nothing, provided what it writes does not depend on what it read: appends, inserts of new keys,
    increments added to totals. Writes of values computed from the table (a change set, corrected totals)
    must not be retried this way, and are not.

    Args:
        write: the write; it makes one commit.
        path: the table, for the log line.
        attempts: runs in all, the first one included.
        sleep: waits the given seconds between runs (a doubling wait with jitter, at most 7.5 s); None for
            ``time.sleep``.

    Raises:
        Exception: the last conflict, once ``attempts`` are spent, or any other error at once.
    """
    import random
    import time

    wait = sleep or time.sleep
    for attempt in range(1, attempts + 1):
        try:
            write()
            return
        except Exception as error:
            if attempt == attempts or not is_conflict(error):
                raise
            log.info("%s: a concurrent commit came first; writing again (attempt %d)", path, attempt + 1)
            wait(min(5.0, 0.05 * 2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter, not security


def append_retrying(
    frame: DataFrame,
    path: str,
    idempotency: tuple[str, int] | None = None,
    attempts: int = 10,
    sleep: Callable[[float], None] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """:func:`append`, retried when a concurrent writer's commit got in first (audit tables are shared).

    Args:
        frame: rows to append.
        path: the table.
        idempotency: ``(application id, version)``: Delta skips the append if that application already
            committed that version or a later one; None for a plain append.
        attempts: appends in all, the first one included.
        sleep: waits the given seconds between appends; None for ``time.sleep``.
        metadata: the commit's own metadata, in place of the session's (:func:`commit_metadata`).
    """
    retrying_conflicts(lambda: append(frame, path, idempotency, metadata=metadata), path, attempts, sleep)


def overwrite(frame: DataFrame, path: str) -> None:
    """Replace the contents (and schema) of the table at ``path`` with ``frame``, as one new version."""
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)


def replace_rows(spark: SparkSession, path: str, rows: DataFrame, keys: list[str], present: str) -> None:
    """Make the rows of ``keys`` in the table at ``path`` what ``rows`` says, in one MERGE.

    ``rows`` holds one row per key; where its boolean column ``present`` is true the table gets that row
    (updated or inserted), where it is false the table's row of that key is deleted.

    Args:
        spark: the session.
        path: the table, which exists.
        rows: the table's columns and ``present``, one row per key to change.
        keys: the columns that identify a row (a null matches a null).
        present: the name of the boolean column of ``rows`` telling whether the key's row is kept; it is not written.
    """
    condition = _same_keys(keys)
    columns = [name for name in rows.columns if name != present]
    values: dict[str, str | Column] = {f"`{name}`": f"s.`{name}`" for name in columns}
    # Not retried on a conflict: ``rows`` are whole values computed from the table as it was; written over
    # another writer's commit they would undo it, so that conflict fails the caller instead.
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), condition)
        .whenMatchedUpdate(condition=f"s.`{present}`", set=values)
        .whenMatchedDelete(condition=f"NOT s.`{present}`")
        .whenNotMatchedInsert(condition=f"s.`{present}`", values=values)
        .execute()
    )
