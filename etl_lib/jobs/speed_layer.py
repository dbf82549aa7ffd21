"""Job ``speed_layer``: events from Kafka, Kinesis or files into Delta, exactly once, with real-time views.

Two streaming queries run. The ingest query reads the configured stream and parses it (the parsing is part of
the query's plan, analysed once when it starts); each micro-batch, in ``foreachBatch``:

1. appends every record as it came to ``bronze/events``;
2. judges the parsed records in one pass (one Spark job, which keeps the judged rows as a local checkpoint:
   the writes after it start from those rows, not from the plan that made them): refused
   records, and events reusing a kept id with another body, go to ``bronze/events_deadletter`` with their
   reasons; events older than the watermark (the newest event time seen before this batch, less
   ``speed.allowed_lateness``) go to ``silver/events_late``;
3. checks the events not seen before (by ``event_id``, against the ids the query keeps of silver's events of the
   watermark's day and the day before) against silver's quality rules and appends them to ``silver/events``
   (rows a quarantine rule moves aside to ``audit/quarantine``);
4. holds the batch's counts and event-time high marks for ``audit/stream_state``, its rules' results for
   ``audit/quality_results`` (unless an alert needs them recorded first) and the progress Spark reported of the
   batches before it for ``audit/stream_progress``, and appends what it holds every ``speed.audit_interval``
   (beside the next batch, which waits for it before its own writes, and at the end of the run). The batch's state
   row and results also ride in its bronze commit's metadata, so that rows a killed run held are written by the
   next run, from bronze.

An output that is empty in a batch gets no commit. The views query reads silver as a stream, on its own
trigger, and adds each batch of new events to ``gold/customer_sessions_5min``, ``gold/customer_sessions``
and ``gold/customer_value`` by MERGE (one after the other, beside the outbox's append), puts an outbox row per
purchase in ``gold/fulfillment_requests``, and publishes the changed customers to the real-time store.

Exactly once: every commit of a micro-batch carries its query's id and the batch's id in its metadata.
Spark runs a batch again only as the first batch of a restarted query, so that batch alone looks for its
commits in each table's newest ones and writes only where they are missing; every other batch makes plain
appends (Delta's transaction ids would rebuild each table's state on every commit to check them). The
watermark of a batch is read from the state of the batches before it, so a replay decides exactly as the
first attempt did.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.listener import StreamingQueryListener
from pyspark.sql.streaming.query import StreamingQuery

from etl_lib.config import EntityConfig, Layer, SpeedConfig, SuiteConfig, interval, secrets
from etl_lib.core.capture import task_scope
from etl_lib.core.run import JobResult, RunContext, TableWrite, run_metadata
from etl_lib.errors import ConfigError, JobFailedError
from etl_lib.io import degraded, lakehouse
from etl_lib.io.degraded import Origin, SinkGuard
from etl_lib.io.sources.events import read_event_stream
from etl_lib.layers import Step, events, privacy, silver
from etl_lib.quality.alerts import needs_alert
from etl_lib.quality.apply import evaluate_rules, record_outcome
from etl_lib.quality.audit import RESULTS_COLUMNS, RESULTS_SCHEMA, Stamp, raise_for, results_rows
from etl_lib.quality.engine import FAILURE_TYPE, FAILURES
from etl_lib.runtime.cache import Cached
from etl_lib.serving import fulfillment, realtime

log = logging.getLogger(__name__)

ENTITY = "events"
TABLES: tuple[tuple[Layer, str], ...] = (
    ("bronze", "events"),
    ("bronze", "events_deadletter"),
    ("silver", "events"),
    ("silver", "events_late"),
    ("gold", "customer_sessions_5min"),
    ("gold", "customer_sessions"),
    ("gold", "customer_value"),
    ("gold", "fulfillment_requests"),
    ("audit", "stream_state"),
    ("audit", "stream_progress"),
    ("audit", "quality_results"),
)
STATE_SCHEMA = (
    "query_id STRING, batch_id BIGINT, max_event_time TIMESTAMP, partition_marks MAP<STRING, TIMESTAMP>, "
    "watermark TIMESTAMP, records BIGINT, "
    "dead_letters BIGINT, late BIGINT, duplicates BIGINT, fresh BIGINT, processed_at TIMESTAMP, run_id STRING"
)
RAW_SCHEMA = "_source STRING, _stream STRING, _partition STRING, _offset STRING, _arrived_at TIMESTAMP, payload BINARY"
BRONZE_SCHEMA = f"{RAW_SCHEMA}, _query_id STRING, _batch_id BIGINT, _ingested_at TIMESTAMP"
#: Properties of the tables that take a commit every micro-batch (bronze and silver events; the real-time views and
#: the outbox, every views batch), when the speed layer creates them. Delta writes a checkpoint of a table's log every
#: ``delta.checkpointInterval`` commits (10 by default), in the committing thread: a micro-batch whose commit fell on
#: one took 1.3 to 1.8 s longer (measured on one-event batches), once every ten batches on each table. Every hundred
#: commits, a reader that starts cold reads at most 99 small commit files after the checkpoint; a running query reads
#: only the new ones.
HOT_TABLE_PROPERTIES = {"delta.checkpointInterval": "100"}
#: Offsets a tolerant Kafka stream never saw (deleted by retention before it read them): one row per hole.
GAPS_SCHEMA = (
    "query_id STRING, batch_id BIGINT, stream STRING, partition STRING, first_missing_offset BIGINT, "
    "next_offset_read BIGINT, missing_records BIGINT, detected_at TIMESTAMP, run_id STRING"
)
PROGRESS_SCHEMA = (
    "query_id STRING, query_run_id STRING, query_name STRING, batch_id BIGINT, timestamp STRING, "
    "num_input_rows BIGINT, input_rows_per_second DOUBLE, processed_rows_per_second DOUBLE, "
    "duration_ms MAP<STRING, BIGINT>, sources STRING, run_id STRING"
)


def query_name(config: SuiteConfig) -> str:
    """Name (and checkpoint folder) of the speed layer's query for the configured source."""
    return f"speed_layer_{config.speed.source}"


class _QueryId:
    """The id of the running query, known once it has started; its micro-batches wait for it."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._value = ""

    def set(self, value: str) -> None:
        self._value = value
        self._ready.set()

    def get(self) -> str:
        if not self._ready.wait(timeout=300):
            raise JobFailedError("the streaming query did not report its id")
        return self._value


@dataclass(frozen=True)
class _Paths:
    bronze: str
    dead_letters: str
    silver: str
    late: str
    windows: str
    sessions: str
    customer_value: str
    outbox: str
    state: str
    progress: str
    gaps: str
    quality_results: str
    quarantine: str

    def ingest(self) -> tuple[str, ...]:
        """The tables a micro-batch of the ingest query may write."""
        return (
            self.bronze,
            self.dead_letters,
            self.silver,
            self.late,
            self.gaps,
            self.quality_results,
            self.quarantine,
        )

    def views(self) -> tuple[str, ...]:
        """The tables a micro-batch of the views query writes."""
        return (self.windows, self.sessions, self.customer_value, self.outbox)


def _paths(config: SuiteConfig) -> _Paths:
    path = config.lakehouse.table_path
    return _Paths(
        bronze=path("bronze", "events"),
        dead_letters=path("bronze", "events_deadletter"),
        silver=path("silver", "events"),
        late=path("silver", "events_late"),
        windows=path("gold", "customer_sessions_5min"),
        sessions=path("gold", "customer_sessions"),
        customer_value=path("gold", "customer_value"),
        outbox=path("gold", "fulfillment_requests"),
        state=path("audit", "stream_state"),
        progress=path("audit", "stream_progress"),
        gaps=path("audit", "stream_gaps"),
        quality_results=path("audit", "quality_results"),
        quarantine=path("audit", "quarantine"),
    )


class _Replay:
    """Which tables already hold a micro-batch that a crash interrupted, so that its replay writes the rest.

    Spark runs a batch again only as the first batch of a restarted query, so only a run's first batch looks
    (in each table's newest commits, :func:`etl_lib.io.lakehouse.holds_batch`); the others write plain appends,
    without Delta's transaction ids, whose check rebuilds the table's state on every commit.
    """

    def __init__(self) -> None:
        self.looked = False

    def holding(self, spark: SparkSession, query_id: str, batch_id: int, paths: Sequence[str]) -> frozenset[str]:
        if self.looked:
            return frozenset()
        self.looked = True
        held = frozenset(path for path in paths if lakehouse.holds_batch(spark, path, query_id, batch_id))
        if held:
            log.info("batch %d of %s is a replay: %s already hold it", batch_id, query_id, ", ".join(sorted(held)))
        return held


#: The key of a bronze commit's metadata that carries its micro-batch's row of ``audit/stream_state``.
STATE_KEY = "stream_state"
_STATE_COLUMNS = tuple(column.split(" ")[0] for column in re.split(r", (?=[a-z_]+ )", STATE_SCHEMA))
_STATE_TIMES = frozenset({"max_event_time", "watermark", "processed_at"})


#: The key of a bronze commit's metadata that carries its micro-batch's rows of ``audit/quality_results`` (held).
RESULTS_KEY = "quality_results"
_RESULTS_TIME = RESULTS_COLUMNS.index("evaluated_at")


def _result_json(row: tuple[Any, ...]) -> list[Any]:
    """A row of ``audit/quality_results`` as JSON values (its time as ISO text), for a commit's metadata."""
    return [value.isoformat() if index == _RESULTS_TIME else value for index, value in enumerate(row)]


def _result_row(value: list[Any]) -> tuple[Any, ...]:
    """The row :func:`_result_json` was made from."""
    return tuple(
        dt.datetime.fromisoformat(item) if index == _RESULTS_TIME else item for index, item in enumerate(value)
    )


def _state_json(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of ``audit/stream_state`` as JSON values (times as ISO text), for a commit's metadata."""

    def text(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    value = {name: text(item) for name, item in zip(_STATE_COLUMNS, row, strict=True)}
    value["partition_marks"] = {key: text(mark) for key, mark in (row[3] or {}).items()}
    return value


def _state_row(value: dict[str, Any]) -> tuple[Any, ...]:
    """The row :func:`_state_json` was made from."""

    def time_of(text: str | None) -> dt.datetime | None:
        return None if text is None else dt.datetime.fromisoformat(text)

    row = {name: time_of(value.get(name)) if name in _STATE_TIMES else value.get(name) for name in _STATE_COLUMNS}
    row["partition_marks"] = {key: time_of(mark) for key, mark in (value.get("partition_marks") or {}).items()}
    return tuple(row[name] for name in _STATE_COLUMNS)


class _AuditLog:
    """The audit rows a run holds until its next append, every ``audit_interval``.

    They are each micro-batch's row of ``audit/stream_state`` and, when no alert needs them at once, its rows of
    ``audit/quality_results``.

    Each micro-batch's rows also ride in its bronze commit's metadata (:data:`STATE_KEY`, :data:`RESULTS_KEY`),
    in the same commit as its records: a run killed between two appends loses none, as the next run's first
    batch takes the rows the tables lack from bronze's newest commits. An append writes the results first and
    the state last, so a batch whose state row is stored has its results stored too.
    """

    def __init__(self, path: str, results_path: str, bronze: str, every: float) -> None:
        self.path = path
        self.results_path = results_path
        self.bronze = bronze
        self.every = every
        self.pending: dict[int, tuple[Any, ...]] = {}
        self.results: dict[int, list[tuple[Any, ...]]] = {}
        #: The query's newest batch in the table, looked up by a run's first batch (:meth:`recover`).
        self.stored = -1
        self.looked = False
        self.appended_at = time.monotonic()
        #: An append may run beside the next batch, which adds its rows meanwhile.
        self.lock = threading.Lock()

    def recover(self, spark: SparkSession, query_id: str) -> None:
        """Hold the rows of this query's batches that bronze has and the tables lack (once per run)."""
        if self.looked:
            return
        self.looked = True
        if lakehouse.is_delta_table(spark, self.path):
            newest = (
                lakehouse.read(spark, self.path).where(F.col("query_id") == query_id).agg(F.max("batch_id")).first()
            )
            self.stored = -1 if newest is None or newest[0] is None else int(newest[0])
        results: dict[int, list[tuple[Any, ...]]] = {}
        for commit in lakehouse.query_commits_after(spark, self.bronze, query_id, self.stored):
            if STATE_KEY in commit.user_metadata:
                row = _state_row(commit.user_metadata[STATE_KEY])
                self.pending[int(row[1])] = row
            if commit.user_metadata.get(RESULTS_KEY):
                rows = [_result_row(value) for value in commit.user_metadata[RESULTS_KEY]]
                results[int(rows[0][3])] = rows
        self.results.update(self._not_stored(spark, results))
        if self.pending or self.results:
            taken = (
                f"stream state of batches {sorted(self.pending)} and quality results of batches {sorted(self.results)}"
            )
            log.info("%s taken from bronze's commits", taken)

    def _not_stored(
        self, spark: SparkSession, results: dict[int, list[tuple[Any, ...]]]
    ) -> dict[int, list[tuple[Any, ...]]]:
        """The held results whose batch the results table lacks (an append killed before the state's)."""
        if not results or not lakehouse.is_delta_table(spark, self.results_path):
            return results
        # A batch's rows carry the run that evaluated it: (run, batch) names it across the query's restarts.
        runs = sorted({rows[0][0] for rows in results.values()})
        found = (
            lakehouse.read(spark, self.results_path)
            .where(F.col("run_id").isin(runs) & F.col("batch_id").isin(sorted(results)))
            .select("run_id", "batch_id")
            .distinct()
            .collect()
        )
        stored = {(row["run_id"], int(row["batch_id"])) for row in found}
        return {batch: rows for batch, rows in results.items() if (rows[0][0], batch) not in stored}

    def marks_before(self, spark: SparkSession, query_id: str, batch_id: int) -> dict[str, Any]:
        """Newest event time per stream partition after the batches before ``batch_id`` (as a replay saw it)."""
        held = [batch for batch in self.pending if batch < batch_id]
        if held:
            return dict(self.pending[max(held)][3] or {})
        if not lakehouse.is_delta_table(spark, self.path):
            return {}
        row = (
            lakehouse.read(spark, self.path)
            .where((F.col("query_id") == query_id) & (F.col("batch_id") < batch_id))
            .orderBy(F.col("batch_id").desc())
            .select("partition_marks")
            .first()
        )
        return {} if row is None or row["partition_marks"] is None else dict(row["partition_marks"])

    def holds(self, batch_id: int) -> bool:
        """Whether the batch's rows are stored or held already (a replayed batch whose bronze commit gave them)."""
        return batch_id <= self.stored or batch_id in self.pending

    def add(self, row: tuple[Any, ...], results: list[tuple[Any, ...]]) -> dict[str, Any]:
        """Hold a batch's state row and result rows, unless held already; returns what its bronze commit carries."""
        batch_id = int(row[1])
        if not self.holds(batch_id):
            with self.lock:
                self.pending[batch_id] = row
                if results:
                    self.results[batch_id] = results
        carried: dict[str, Any] = {STATE_KEY: _state_json(row)}
        if results:
            carried[RESULTS_KEY] = [_result_json(result) for result in results]
        return carried

    def due(self) -> bool:
        return time.monotonic() - self.appended_at >= self.every

    def append(self, spark: SparkSession, metadata: dict[str, Any] | None = None) -> None:
        """Append the rows held, in batch order: the results in one commit, then the state in one commit.

        Args:
            spark: the session.
            metadata: the commits' metadata (the batch after which they are made), in place of the session's:
                an append may run beside the next batch, whose metadata the session has by then.
        """
        self.appended_at = time.monotonic()
        with self.lock:
            result_batches = sorted(self.results)
            results = [row for batch in result_batches for row in self.results[batch]]
            state_batches = sorted(self.pending)
            states = [self.pending[batch] for batch in state_batches]
        if results:
            frame = spark.createDataFrame(results, RESULTS_SCHEMA)
            lakehouse.append_retrying(frame, self.results_path, metadata=metadata)
            with self.lock:
                for batch in result_batches:
                    del self.results[batch]
        if not states:
            return
        lakehouse.append(spark.createDataFrame(states, STATE_SCHEMA), self.path, metadata=metadata)
        with self.lock:
            self.stored = max(state_batches[-1], self.stored)
            for batch in state_batches:
                del self.pending[batch]


class ProgressRecorder(StreamingQueryListener):
    """Keeps each micro-batch's progress until the next batch (or the end of the run) writes it down."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.rows: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.last_batch: dict[str, int] = {}

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's name
        """Nothing to record at start."""

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        """Nothing to record while idle."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        """Nothing to record at the end; the run flushes what it holds."""

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        progress = event.progress
        if progress.name not in self.names:
            return
        sources = [
            {"description": s.description, "start": s.startOffset, "end": s.endOffset, "rows": s.numInputRows}
            for s in progress.sources
        ]
        row = (
            str(progress.id),
            str(progress.runId),
            progress.name,
            int(progress.batchId),
            progress.timestamp,
            int(progress.numInputRows),
            float(progress.inputRowsPerSecond or 0.0),
            float(progress.processedRowsPerSecond or 0.0),
            {key: int(value) for key, value in (progress.durationMs or {}).items()},
            json.dumps(sources, default=str),
        )
        with self.lock:
            self.rows.append(row)
            self.last_batch[progress.name] = max(self.last_batch.get(progress.name, -1), int(progress.batchId))

    def wait_for(self, queries: Sequence[StreamingQuery], timeout: float = 10.0) -> bool:
        """Wait until the listener has heard of each query's last batch that ran (it hears a moment after the query).

        Returns False, with a warning naming the batch, when it has not heard of one after ``timeout`` seconds: the
        progress rows written then lack that batch's.
        """
        deadline = time.monotonic() + timeout
        for query in queries:
            last = last_batch_run(query.recentProgress)
            while self.last_batch.get(query.name, -1) < last:
                if time.monotonic() > deadline:
                    log.warning("no progress report of batch %d of %s came in %.0f s", last, query.name, timeout)
                    return False
                time.sleep(0.2)
        return True

    def drain(self) -> list[tuple[Any, ...]]:
        with self.lock:
            rows, self.rows = self.rows, []
        return rows


def last_batch_run(progresses: Sequence[Mapping[str, Any]]) -> int:
    """The id of the newest batch among a query's progress reports that ran one.

    A trigger that found nothing new ran no batch: Spark keeps its report (the query's ``lastProgress``, under the
    id of the batch to come) but tells no listener of it, so a listener hears only of the batches that ran, whose
    reports time their sink (``addBatch``).

    Args:
        progresses: the query's reports (``recentProgress``): dicts on Spark 3.5, dict-like reports on Spark 4.

    Returns:
        The batch id, or -1 when none of the reports is of a batch that ran.
    """
    ran = [int(report["batchId"]) for report in progresses if "addBatch" in (report.get("durationMs") or {})]
    return max(ran, default=-1)


def _flush_progress(
    spark: SparkSession,
    recorder: ProgressRecorder,
    path: str,
    context: RunContext,
    idempotency: Callable[[list[tuple[Any, ...]]], tuple[str, int] | None] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append the progress the listener holds.

    ``idempotency`` gives the rows' transaction id, if any; ``metadata`` is the commit's, in place of the session's.
    """
    rows = recorder.drain()
    if not rows:
        return
    frame = spark.createDataFrame([(*row, context.run_id) for row in rows], PROGRESS_SCHEMA)
    lakehouse.append(frame, path, idempotency(rows) if idempotency else None, metadata=metadata)


def _newest_batch(query_id: str) -> Callable[[list[tuple[Any, ...]]], tuple[str, int] | None]:
    """The transaction id of progress rows: the ingest query's newest batch in them (they come in order)."""

    def txn(rows: list[tuple[Any, ...]]) -> tuple[str, int] | None:
        ids = [int(row[3]) for row in rows if row[0] == query_id]
        return (f"{query_id}:audit/stream_progress", max(ids)) if ids else None

    return txn


class _KeptIds:
    """``event_id``, digest and date of silver's events in the window a batch is judged against, kept by the query.

    A batch's events are looked up here, not in silver: the first batch of a run reads silver once (leaving out
    the rows of this very batch that a crash left there, as a replay must not find itself), and every batch then
    adds the rows it appended to silver (quality applied, as silver has them). The window is the day of the
    watermark and the day before (silver's partitions, as the lookup in silver took them); rows older than it are
    let go of every :attr:`every` batches. The rows are kept by Spark as local checkpoints: about 100 bytes for
    each event of the window (README, the speed layer). Nothing else adds rows to silver's events while the query
    runs: a quarantine replay of that table waits for the speed layer's lock (:mod:`etl_lib.runtime.registry`).
    """

    COLUMNS = ("event_id", "_payload_digest", "event_date")

    def __init__(self, silver_path: str, every: int = 50) -> None:
        self.path = silver_path
        self.every = every
        self.frame: DataFrame | None = None
        self.added = 0

    def stored(
        self, spark: SparkSession, parsed: DataFrame, query_id: str, batch_id: int, watermark: dt.datetime | None
    ) -> DataFrame:
        """``event_id`` and digest of kept events sharing an id with the batch's error-free ones (in the window)."""
        if self.frame is None:
            self.frame = self._load(spark, query_id, batch_id, watermark)
        elif self.added >= self.every:
            self.frame = _in_window(self.frame, watermark).localCheckpoint(eager=True)
            self.added = 0
        # The batch's ids, distinct and broadcast, joined to the kept rows as a whole: a semi-join is pushed by Spark
        # below the union of the kept batches, one shuffled join per batch kept (jobs grew by five a batch).
        ids = F.broadcast(parsed.where(silver.no_errors()).select("event_id").distinct())
        window = _in_window(self.frame, watermark)
        return window.join(ids, "event_id", "inner").select("event_id", "_payload_digest")

    def add(self, appended: DataFrame) -> None:
        """Keep the ids of the rows a batch appended to silver (a small job: the batch's rows are cached)."""
        if self.frame is None:
            return
        rows = appended.select(*self.COLUMNS).localCheckpoint(eager=True)
        self.frame = self.frame.unionByName(rows)
        self.added += 1

    def _load(self, spark: SparkSession, query_id: str, batch_id: int, watermark: dt.datetime | None) -> DataFrame:
        # Silver exists: the job creates it before the query starts (:func:`_silver_as_declared`).
        stored = lakehouse.read(spark, self.path)
        # Rows this very batch wrote before a crash are not duplicates of it.
        stored = stored.where(~((F.col("_query_id") == query_id) & (F.col("_batch_id") == batch_id)))
        return _in_window(stored, watermark).select(*self.COLUMNS).localCheckpoint(eager=True)


def _in_window(events: DataFrame, watermark: dt.datetime | None) -> DataFrame:
    """The events a batch with ``watermark`` is judged against: those of its day and the day before (all before any)."""
    if watermark is None:
        return events
    return events.where(F.col("event_date") >= F.date_sub(F.to_date(F.lit(watermark)), 1))


class SpeedBatch:
    """What one micro-batch does (see the module's description)."""

    def __init__(
        self, config: SuiteConfig, context: RunContext, query_id: _QueryId, recorder: ProgressRecorder
    ) -> None:
        entity = config.entities.get(ENTITY)
        if entity is None:
            raise ConfigError(f"{config.source_file}: entities.{ENTITY}: the speed layer needs this entity")
        self.entity: EntityConfig = entity
        self.config = config
        self.speed = config.speed
        self.context = context
        self.query_id = query_id
        self.recorder = recorder
        self.paths = _paths(config)
        self.score = anomaly_scoring(config)
        speed = config.speed
        self.checks = events.parse_events(
            entity, speed.max_payload_bytes, speed.max_future_skew, speed.earliest_event_time
        )
        self.pii_key = secrets.privacy_key(config, ENTITY)
        self.protect = privacy.pii_protection(config.privacy.pii.get(ENTITY, {}), self.pii_key)
        #: The event-time high mark after this run's last batch, by its batch id.
        self._marks: dict[int, dict[str, Any]] = {}
        #: The last Kafka offset read per (topic, partition) after this run's last batch, by its batch id.
        self._offsets: dict[int, dict[tuple[str, str], int]] = {}
        #: Holes in the offsets are looked for where data loss is tolerated (else Spark fails on them).
        self.watch_gaps = self.speed.source == "kafka" and not self.speed.kafka.fail_on_data_loss
        self.replay = _Replay()
        self.kept = _KeptIds(self.paths.silver)
        every = interval(self.speed.audit_interval).total_seconds()
        #: The configured durations, read once a run rather than once a batch.
        self.lateness = interval(self.speed.allowed_lateness)
        self.state = _AuditLog(self.paths.state, self.paths.quality_results, self.paths.bronze, every)
        #: The audit rows are appended off the batch's path: each ``audit_interval``, after a batch's writes, while
        #: the next batch reads and judges its records (the next batch's writes wait for it).
        self._auditor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speed-audit")
        self._audit: Future[None] | None = None

    def parse(self, raw: DataFrame) -> DataFrame:
        """The stream's raw records parsed and typed (:func:`etl_lib.layers.events.parse_events`).

        It is applied to the stream, not to each micro-batch: Spark then analyses its deep expressions once, when
        the query starts, where a batch parsing its own frame paid about a quarter of a second to plan them.
        """
        parsed = raw.transform(self.checks)
        if self.pii_key is not None:
            # The digest that tells repeats from conflicts is keyed too: a plain digest of a payload whose
            # other fields silver shows would let anyone test guesses of the personal ones.
            digest = privacy.keyed_hash(self.pii_key)(F.col("payload").cast("string"))
            parsed = parsed.withColumn("_payload_digest", digest)
        return parsed

    def __call__(self, frame: DataFrame, batch_id: int) -> None:
        """One micro-batch of the stream, parsed by :meth:`parse`."""
        query_id = self.query_id.get()
        spark = frame.sparkSession
        now = self.context.clock()
        speed, paths = self.speed, self.paths

        with Cached() as cache:
            # The batch comes parsed (:meth:`parse` is in the query's plan); kept for the judging, which reads
            # it twice (the batch's ids, looked up in silver, and the batch).
            parsed = cache(frame)
            metadata = run_metadata(self.context, "speed_layer", query_id=query_id, batch_id=batch_id)
            with lakehouse.commit_metadata(spark, metadata):
                # Only the first batch of a run can be a replay of one a crash interrupted.
                done = self.replay.holding(spark, query_id, batch_id, paths.ingest())
                self.state.recover(spark, query_id)
                if batch_id - 1 in self._marks:
                    before = self._marks[batch_id - 1]
                else:
                    before = self.state.marks_before(spark, query_id, batch_id)
                # Each stream partition (Kafka partition, Kinesis shard) is read at its own pace, so the
                # watermark follows the slowest: an event is late once every partition has moved past it.
                watermark = min(before.values()) - self.lateness if before else None
                stored = self.kept.stored(spark, parsed, query_id, batch_id, watermark)
                # One job reads the batch, parses and judges it, and keeps the judged rows (every record, with its
                # raw columns) as they are, without the plan that made them: every write below, bronze's too,
                # starts from those rows, instead of reading the stream again or planning again the parsing's
                # deep expressions and the read of silver.
                judged = parsed.transform(events.judge_events(watermark, stored)).localCheckpoint(eager=True)
                tally = _tally(judged, speed.source)
                counts = tally.counts
                valid = events.valid_events(self.entity, batch_id, query_id, now)
                fresh = judged.where(F.col(events.FATE) == "fresh").transform(valid)
                stamp = Stamp(self.context.run_id, self.context.job, batch_id, now)
                # A stream is not stopped by a held-back batch: its rows wait in quarantine for a replay.
                silver_rows = cache(fresh.drop("payload").transform(self.protect).transform(self.score))
                checked, held_results, audit_writes = self._quality(spark, silver_rows, stamp, batch_id, done, counts)
                state_row = self._state_row(query_id, batch_id, before, tally, watermark, now)
                # The batch's state and results ride in its bronze commit; the audit tables get the held rows now
                # and then.
                carried = {**metadata, **self.state.add(state_row, held_results)}
                batch = (query_id, batch_id, now)
                writes = self._writes(spark, judged, checked, valid, counts, carried, batch, watermark)
                pending = [write for path, write in writes.items() if path not in done] + audit_writes
                # The audit rows of the batches before are in before this batch's commits (their order in the
                # tables is the batches').
                self.settle()
                written = _all_at_once(pending)
                if counts["fresh"]:
                    self.kept.add(checked)
                if self.state.due():
                    self._audit = self._auditor.submit(self.append_audit, spark, metadata)
            log.info("speed batch %d: %s; seconds: %s", batch_id, counts, written)

    def append_audit(self, spark: SparkSession, metadata: dict[str, Any]) -> None:
        """Append the held state and results rows and the progress reported (beside a batch, and at the run's end).

        The progress rows carry the ingest query's newest batch in them as their transaction id: a batch run again
        after a restart reports its progress again, which the table has.
        """
        newest = _newest_batch(self.query_id.get())
        _all_at_once(
            [
                lambda: self.state.append(spark, metadata),
                lambda: _flush_progress(spark, self.recorder, self.paths.progress, self.context, newest, metadata),
            ]
        )

    def settle(self) -> None:
        """Wait for the audit append under way, if any; its failure is raised here."""
        audit, self._audit = self._audit, None
        if audit is not None:
            audit.result()

    def close(self) -> BaseException | None:
        """Wait for the audit append under way and stop its thread; returns the append's failure, if any."""
        audit, self._audit = self._audit, None
        self._auditor.shutdown(wait=True)
        return None if audit is None else audit.exception()

    def _state_row(
        self,
        query_id: str,
        batch_id: int,
        before: dict[str, Any],
        tally: _Tally,
        watermark: dt.datetime | None,
        now: dt.datetime,
    ) -> tuple[object, ...]:
        """The batch's row of ``audit/stream_state``: each partition's mark moved on by the batch, and its counts."""
        after = dict(before)
        for partition, mark in tally.marks.items():
            after[partition] = max(mark, after[partition]) if partition in after else mark
        self._marks = {batch_id: after}  # only the next batch reads it
        counts = tally.counts
        return (
            *(query_id, batch_id, max(after.values()) if after else None, after, watermark),
            *(counts[key] for key in ("records", "dead_letters", "late", "duplicates", "fresh")),
            *(now, self.context.run_id),
        )

    def _quality(
        self,
        spark: SparkSession,
        silver_rows: DataFrame,
        stamp: Stamp,
        batch_id: int,
        done: frozenset[str],
        counts: dict[str, int],
    ) -> tuple[DataFrame, list[tuple[Any, ...]], list[Callable[[], object]]]:
        """Silver's rules on the batch: the rows kept, the results held for the state rows, the audit writes.

        The quality results are held with the batch's state (no commit of their own) unless an alert needs them
        recorded first; quarantined rows are written beside silver and bronze. A rule that stops the run is
        recorded, then raised.
        """
        evaluation = evaluate_rules(self.config, "silver", ENTITY, silver_rows, stamp, stamp.at)
        counts["quarantined"] = evaluation.quarantined_rows if evaluation else 0
        if evaluation is None:
            return silver_rows, [], []
        # A replayed batch whose bronze commit is in: its results were recorded, or held from there.
        replayed = self.state.holds(batch_id)
        hold = replayed or not (evaluation.failed or needs_alert(evaluation))
        held_results = results_rows(evaluation, stamp) if hold and not replayed else []
        record = functools.partial(
            record_outcome, spark, self.config, evaluation, stamp, written=done, results=not hold
        )
        if evaluation.failed:
            record()
            raise_for(evaluation, stop_when_held=False)
        return evaluation.kept, held_results, [record]

    def _writes(
        self,
        spark: SparkSession,
        judged: DataFrame,
        checked: DataFrame,
        valid: Step,
        counts: dict[str, int],
        carried: dict[str, Any],
        batch: tuple[str, int, dt.datetime],
        watermark: dt.datetime | None,
    ) -> dict[str, Callable[[], object]]:
        """The batch's writes by table path: bronze always, each other table only when the batch has rows for it.

        Args:
            spark: the session.
            judged: the batch's records, each with its fate (fresh, late, duplicate, dead letter).
            checked: the fresh rows silver keeps (quality applied).
            valid: the batch's step from a judged record to silver's columns (the late events take it too).
            counts: the batch's counts by fate; the records lost to a gap are added here.
            carried: bronze's commit metadata (the run, and the state and results rows it carries).
            batch: the query's id, the batch's id and the batch's time.
            watermark: the event time before which an event is late, None before any.
        """
        query_id, batch_id, now = batch
        paths = self.paths
        bronze = judged.transform(events.bronze_records(batch_id, query_id, now))
        writes: dict[str, Callable[[], object]] = {
            paths.bronze: lambda: lakehouse.append(bronze, paths.bronze, metadata=carried),
        }
        # A batch that keeps nothing new, refuses nothing or has nothing late makes no commit for it.
        if counts["fresh"]:
            writes[paths.silver] = lambda: lakehouse.append(checked, paths.silver, partition_by=("event_date",))
        if counts["dead_letters"]:
            refused = judged.transform(events.refused_events(batch_id, query_id, now))
            writes[paths.dead_letters] = lambda: lakehouse.append(refused, paths.dead_letters)
        if self.watch_gaps:
            holes = self._gaps(spark, judged, query_id, batch_id)
            counts["lost"] = sum(hole[4] for hole in holes)
            if holes:
                log.warning(
                    "speed batch %d: %d records lost before they were read: %s", batch_id, counts["lost"], holes
                )
                rows = [(query_id, batch_id, *hole, now, self.context.run_id) for hole in holes]
                gaps = spark.createDataFrame(rows, GAPS_SCHEMA)
                writes[paths.gaps] = lambda: lakehouse.append(gaps, paths.gaps)
        if counts["late"]:
            aside = (
                judged.where(F.col(events.FATE) == "late")
                .transform(valid)
                .transform(self.protect)
                .withColumn("_watermark", F.lit(watermark).cast("timestamp"))
            )
            if self.pii_key is not None:
                # Bronze keeps the payload as it came; silver's late events keep only protected values.
                aside = aside.withColumn("payload", F.lit(None).cast("binary"))
            writes[paths.late] = lambda: lakehouse.append(aside, paths.late)
        return writes

    def _gaps(
        self, spark: SparkSession, records: DataFrame, query_id: str, batch_id: int
    ) -> list[tuple[str, str, int, int, int]]:
        """``(topic, partition, first missing, next read, missing)`` for each hole before this batch's offsets.

        A hole is offsets never read. Transaction markers and compacted-away keys take offsets too, so on such
        topics a hole is an upper bound of what retention removed.
        """
        offset = F.col("_offset").cast("bigint")
        found = records.groupBy("_stream", "_partition").agg(F.min(offset).alias("lo"), F.max(offset).alias("hi"))
        ranges = {(row["_stream"], row["_partition"]): (int(row["lo"]), int(row["hi"])) for row in found.collect()}
        previous = self._offsets.get(batch_id - 1)
        if previous is None:
            previous = self._stored_offsets(spark, query_id, batch_id)
        holes = [
            (stream, partition, previous[(stream, partition)] + 1, low, low - previous[(stream, partition)] - 1)
            for (stream, partition), (low, _) in sorted(ranges.items())
            if (stream, partition) in previous and low > previous[(stream, partition)] + 1
        ]
        self._offsets = {batch_id: previous | {key: high for key, (_, high) in ranges.items()}}
        return holes

    def _stored_offsets(self, spark: SparkSession, query_id: str, batch_id: int) -> dict[tuple[str, str], int]:
        """The last offset per (topic, partition) bronze holds from this query's earlier batches (after a restart)."""
        if not lakehouse.is_delta_table(spark, self.paths.bronze):
            return {}
        rows = (
            lakehouse.read(spark, self.paths.bronze)
            .where((F.col("_query_id") == query_id) & (F.col("_batch_id") < batch_id))
            .groupBy("_stream", "_partition")
            .agg(F.max(F.col("_offset").cast("bigint")).alias("hi"))
            .collect()
        )
        return {(row["_stream"], row["_partition"]): int(row["hi"]) for row in rows}


class ViewsBatch:
    """What one micro-batch of new silver events does to the real-time gold views and the outbox."""

    def __init__(self, config: SuiteConfig, context: RunContext, query_id: _QueryId) -> None:
        self.config = config
        self.speed = config.speed
        self.context = context
        self.query_id = query_id
        self.paths = _paths(config)
        self.replay = _Replay()
        #: Customers the real-time store did not take while it was out of reach, written once it is back.
        self.backlog = realtime.Backlog()
        #: The Step Functions client of the relay (``speed.dispatch_fulfillment``), made at its first batch.
        self.step_functions: Any = None

    def __call__(self, fresh: DataFrame, batch_id: int) -> None:
        query_id = self.query_id.get()
        spark = fresh.sparkSession
        speed, paths = self.speed, self.paths
        # The batch itself, a plain scan of silver's new files, is read twice (folded below, and for the outbox)
        # and not persisted: persisted whole, it made views batches slower, and a one-event ingest batch beside them.
        metadata = run_metadata(self.context, "speed_layer/views", query_id=query_id, batch_id=batch_id)
        with lakehouse.commit_metadata(spark, metadata):
            done = self.replay.holding(spark, query_id, batch_id, paths.views())
            # The batch's events folded once, per customer, session and window: each view's increments come from
            # these few rows, which each MERGE reads twice. Kept as a local checkpoint (let go of with the frame):
            # Delta copies a MERGE source that is not a plain Delta scan either way, and this copy is small.
            activity = fresh.transform(_window_activity(speed)).localCheckpoint(eager=True)
            # A batch without a purchase changes no customer's value and asks for no fulfilment: no commit to
            # either (a MERGE costs about a second even for nothing). A replay finds the same.
            bought = not activity.where(F.col("purchases") > 0).isEmpty()
            outbox = fresh.transform(events.fulfillment_requests(speed.purchase_type))
            writes = [lambda: self._merge_views(spark, activity, done, bought)]
            if paths.outbox not in done and bought:
                writes.append(lambda: lakehouse.append(outbox, paths.outbox))
            _all_at_once(writes)
        if self.config.serving.realtime_store.enabled:
            self._publish(spark, fresh, batch_id)
        if speed.dispatch_fulfillment and bought:
            self._dispatch(spark, batch_id)

    def _dispatch(self, spark: SparkSession, batch_id: int) -> None:
        # After the outbox's append, under metadata of its own: the relay's commits are not the views batch's (a
        # replay tells its own by them). Step Functions out of reach leaves the requests pending, and the stream
        # goes on: a warning and a row of audit/sink_failures, as for a monitoring sink.
        metadata = run_metadata(self.context, "speed_layer/fulfillment", relayed_after_batch=batch_id)
        if self.step_functions is None:
            self.step_functions = fulfillment.step_functions_client(self.config.fulfillment, self.config.services)
        with lakehouse.commit_metadata(spark, metadata):
            dispatch = fulfillment.relay(spark, self.config, client=self.step_functions, clock=self.context.clock)
        if dispatch.out_of_reach is not None:
            guard = SinkGuard(self.config.sinks, Origin(self.context.run_id, self.context.job, batch_id))
            sending = f"{dispatch.left} fulfillment requests (left pending)"
            guard.give_up("stepfunctions", sending, dispatch.out_of_reach, attempts=self.config.fulfillment.attempts)
            degraded.record(spark, self.config.lakehouse, guard.drain())

    def _publish(self, spark: SparkSession, fresh: DataFrame, batch_id: int) -> None:
        # After the views' commits: the totals read back are what this batch made them, on a retry too.
        metrics = realtime.customer_metrics(
            lakehouse.read(spark, self.paths.customer_value),
            lakehouse.read(spark, self.paths.sessions),
            batch_id,
            self.context.clock(),
        )
        origin = Origin(self.context.run_id, self.context.job, batch_id)
        realtime.publish(fresh.transform(metrics), self.config, origin=origin, backlog=self.backlog)

    def _merge_views(self, spark: SparkSession, activity: DataFrame, done: frozenset[str], bought: bool) -> None:
        # One after the other, beside the outbox's append: run at once too, they made a views batch shorter but
        # took the cores from the ingest query when events come steadily (README, the speed layer).
        for view in _views(self.paths):
            if view.path in done or (view.purchases_only and not bought):
                continue
            lakehouse.merge_increments(
                spark,
                view.path,
                view.increments(activity),
                list(view.keys),
                add=view.add,
                greatest=view.greatest,
                least=view.least,
                latest=view.latest,
            )


@dataclass(frozen=True)
class _View:
    """A real-time view: its table, its increments from a batch's window activity, and how they fold into it."""

    path: str
    increments: Callable[[DataFrame], DataFrame]
    keys: tuple[str, ...]
    add: tuple[str, ...]
    greatest: tuple[str, ...] = ()
    least: tuple[str, ...] = ()
    latest: dict[str, str] | None = None
    #: Only a batch with a purchase changes it.
    purchases_only: bool = False


def _views(paths: _Paths) -> tuple[_View, ...]:
    return (
        _View(
            paths.windows,
            lambda activity: activity.select(*events.WINDOW_COLUMNS),
            ("customer_id", "session_id", "window_start"),
            add=("page_views", "purchases", "purchase_amount", "events"),
            greatest=("last_event_time",),
        ),
        _View(
            paths.sessions,
            events.activity_sessions,
            ("customer_id", "session_id"),
            add=("page_views", "events"),
            least=("started_at",),
            greatest=("last_activity",),
            latest={"current_page": "current_page_at"},
        ),
        _View(
            paths.customer_value,
            events.activity_customer_value,
            ("customer_id",),
            add=("lifetime_value", "purchase_count"),
            least=("first_purchase_at",),
            greatest=("last_purchase_at",),
            purchases_only=True,
        ),
    )


def _window_activity(speed: SpeedConfig) -> Step:
    return events.window_activity(speed.window, speed.page_view_type, speed.purchase_type)


@dataclass(frozen=True)
class _Tally:
    """What a micro-batch's records came to: counts by fate, and the newest event time per stream partition."""

    counts: dict[str, int]
    marks: dict[str, Any]


def _tally(judged: DataFrame, source: str) -> _Tally:
    """Count the judged records by fate, and find each stream partition's newest valid event time (one job)."""
    key = events.watermark_partition(source)
    fate = F.col(events.FATE)
    rows = (
        judged.groupBy(key, fate)
        .agg(F.count(F.lit(1)).alias("n"), F.max(F.when(fate != "refused", F.col("timestamp"))).alias("m"))
        .collect()
    )
    by_fate: dict[str, int] = {}
    marks: dict[str, Any] = {}
    for row in rows:
        by_fate[row[events.FATE]] = by_fate.get(row[events.FATE], 0) + int(row["n"])
        if row["m"] is not None:
            partition = str(row[key])
            marks[partition] = max(row["m"], marks[partition]) if partition in marks else row["m"]
    counts = {
        "records": sum(by_fate.values()),
        "dead_letters": by_fate.get("refused", 0) + by_fate.get("conflict", 0),
        "late": by_fate.get("late", 0),
        "fresh": by_fate.get("fresh", 0),
        # Repeats of an event already kept, with the same body; a repeat with another body is a dead letter.
        "duplicates": by_fate.get("duplicate", 0),
    }
    return _Tally(counts, marks)


def _timed(write: Callable[[], object]) -> float:
    started = time.monotonic()
    write()
    return round(time.monotonic() - started, 2)


def _all_at_once(writes: Sequence[Callable[[], object]]) -> list[float]:
    """Run independent writes of a micro-batch together; returns the seconds each took.

    Each Delta commit spends much of its time waiting on storage and the log, so they overlap well.
    """
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix="speed-write") as pool:
        futures = [pool.submit(_timed, write) for write in writes]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [future.result() for future in futures]


def _install_stop_signals(stop: threading.Event) -> None:
    """Stop gracefully on SIGTERM and SIGINT (only possible from the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())


def _run_until_stopped(queries: Sequence[StreamingQuery], stop: threading.Event) -> None:
    """Keep long-running queries going until one ends or ``stop`` is set, then stop them between batches."""
    _install_stop_signals(stop)
    while all(query.isActive for query in queries) and not stop.is_set():
        queries[0].awaitTermination(1)
    for query in queries:
        # Stopping a query in the middle of a micro-batch interrupts its writes; wait for the batch to end.
        deadline = time.monotonic() + 120
        while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
            time.sleep(0.2)
        if query.isActive:
            log.info("stopping %s", query.name)
            query.stop()


def _await(query: StreamingQuery, handler: lakehouse.BatchHandler) -> None:
    """Wait for an available-now query; its failure is raised as the micro-batch raised it."""
    try:
        query.awaitTermination()
    except Exception as failure:  # noqa: BLE001 - re-raised, as the handler's own error when it is one
        handler.reraise(JobFailedError(f"the speed layer's query {query.name} failed: {failure}"))


def _drains_in_one_run(config: SuiteConfig) -> bool:
    """Whether an available-now query of the configured source reads everything there is (Spark's own sources)."""
    speed = config.speed
    return not (speed.source == "kinesis" and speed.kinesis.connector == "python")


def _read_something(query: StreamingQuery) -> bool:
    return any(progress["numInputRows"] for progress in query.recentProgress)


@contextlib.contextmanager
def _listening(spark: SparkSession, recorder: ProgressRecorder) -> Iterator[None]:
    spark.streams.addListener(recorder)
    try:
        yield
    finally:
        spark.streams.removeListener(recorder)


def anomaly_scoring(config: SuiteConfig, resolve: bool = True) -> Step:
    """The step scoring purchase events with the anomaly model's champion (resolved once), or no step.

    With ``resolve`` false no model is looked up: the step only shapes the columns (for schemas).
    """
    from etl_lib.ml.anomaly import champion_scoring

    purchases = F.col("event_type") == config.speed.purchase_type
    return champion_scoring(config.ml, purchases, enabled=config.ml.anomaly.in_speed_layer, resolve=resolve)


def silver_schema(spark: SparkSession, config: SuiteConfig, checks: Step) -> Any:
    """The columns of silver/events, derived from the transforms that produce them.

    ``checks`` is the parsing step of the run's batches (:attr:`SpeedBatch.checks`): it takes about half a second
    to build, so it is built once.
    """
    entity = config.entities[ENTITY]
    raw = spark.createDataFrame([], RAW_SCHEMA)
    frame = raw.transform(checks).transform(events.valid_events(entity, 0, "", context_free_time())).drop("payload")
    frame = frame.transform(anomaly_scoring(config, resolve=False))
    if config.quality.rules_of("silver", ENTITY) is not None:
        frame = frame.withColumn(FAILURES, F.array().cast(FAILURE_TYPE))
    return frame.schema


def context_free_time() -> dt.datetime:
    """A placeholder time for deriving schemas (no row is ever stamped with it)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _silver_as_declared(spark: SparkSession, config: SuiteConfig, path: str, checks: Step) -> list[str]:
    """Silver created, or given the columns the entity now declares; the columns added.

    The views query reads silver as a stream, so silver must exist before it starts. A field newly declared in the
    entity becomes a new column of silver here, before any query reads or writes it.
    """
    wanted = silver_schema(spark, config, checks)
    lakehouse.ensure_table(spark, path, wanted, HOT_TABLE_PROPERTIES, partition_by=("event_date",))
    added = lakehouse.add_columns(spark, path, wanted, f"entities.{ENTITY} against silver/{ENTITY}")
    if added:
        log.info("silver/%s: columns added as the entity now declares them: %s", ENTITY, ", ".join(added))
    return added


def _views_tables(spark: SparkSession, config: SuiteConfig, paths: _Paths) -> None:
    """Create the real-time views and the outbox that are missing, empty, before the queries start.

    A table a micro-batch created would take a commit of its own under the batch's metadata, which a replay of the
    batch (killed after it) would take for the batch's write. They take a commit every views batch with a purchase:
    :data:`HOT_TABLE_PROPERTIES`.
    """
    silver = lakehouse.read(spark, paths.silver)
    activity = silver.transform(_window_activity(config.speed))
    schemas = {view.path: view.increments(activity).schema for view in _views(paths)}
    schemas[paths.outbox] = silver.transform(events.fulfillment_requests(config.speed.purchase_type)).schema
    for path, schema in schemas.items():
        lakehouse.ensure_table(spark, path, schema, HOT_TABLE_PROPERTIES)


def _writes_of_run(
    spark: SparkSession, config: SuiteConfig, context: RunContext, versions: dict[tuple[Layer, str], int | None]
) -> list[TableWrite]:
    """What the run wrote to each of the layer's tables, from each table's commits after its version ``versions``."""

    def written(table: tuple[Layer, str]) -> TableWrite:
        path = config.lakehouse.table_path(*table)
        return lakehouse.writes_of_run(spark, *table, path, versions[table], context.run_id)

    # Each reads its table's newest commits: a few Spark jobs each, which overlap well.
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="speed-writes") as pool:
        return list(pool.map(written, TABLES))


# One piece, longer than 60 lines: the two queries' life (started, drained or run until stopped, their failures
# raised, the held audit rows flushed) reads in the order it happens.
def speed_layer(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Run the speed layer until stopped (SIGTERM/SIGINT), or with ``--available-now`` drain and stop.

    Two queries run: ``speed_layer_<source>`` takes the stream into bronze and silver (the hot path, kept
    short so that events are visible in silver soon), and ``speed_layer_<source>_views`` folds new silver
    events into the gold views and the outbox.

    Returns:
        Every table written, with the rows this run's commits wrote.

    Raises:
        ConfigError: if the events entity is missing or the source is not usable.
        JobFailedError: if a streaming query fails.
    """
    if ENTITY not in config.entities:
        raise ConfigError(f"{config.source_file}: entities.{ENTITY}: the speed layer needs this entity")
    name = query_name(config)
    paths = _paths(config)
    versions = {table: lakehouse.current_version(spark, config.lakehouse.table_path(*table)) for table in TABLES}
    recorder = ProgressRecorder({name, f"{name}_views"})
    ingest_id, views_id = _QueryId(), _QueryId()
    available_now = config.run.available_now

    handlers: dict[str, lakehouse.BatchHandler] = {}

    def started(frame: DataFrame, query: str, handle: Any, holder: _QueryId, interval: str) -> StreamingQuery:
        handlers[query] = lakehouse.BatchHandler(handle)
        trigger: dict[str, Any] = {"availableNow": True} if available_now else {"processingTime": interval}
        checkpoint = config.lakehouse.query_checkpoint(query)
        running = lakehouse.start_foreach_batch(frame, checkpoint, query, handlers[query], trigger)
        holder.set(str(running.id))
        return running

    batch = SpeedBatch(config, context, ingest_id, recorder)
    added = _silver_as_declared(spark, config, paths.silver, batch.checks)
    lakehouse.ensure_table(spark, paths.bronze, spark.createDataFrame([], BRONZE_SCHEMA).schema, HOT_TABLE_PROPERTIES)
    _views_tables(spark, config, paths)
    fulfillment.prepare_outbox(spark, paths.outbox)
    with _listening(spark, recorder):
        source = read_event_stream(spark, config.speed, config.services).transform(batch.parse)
        ingest = started(source, name, batch, ingest_id, config.speed.trigger_interval)
        ingests = [ingest]
        if available_now:
            _await(ingest, handlers[name])
            # The suite's own Kinesis source decides where a batch ends as it reads it (Spark's simple stream
            # reader), so Spark takes the end of its first batch for all that is available: an available-now query
            # stops after one batch. It is run again from its checkpoint until a run finds nothing new.
            while not _drains_in_one_run(config) and _read_something(ingest):
                source = read_event_stream(spark, config.speed, config.services).transform(batch.parse)
                ingest = started(source, name, batch, ingest_id, config.speed.trigger_interval)
                ingests.append(ingest)
                _await(ingest, handlers[name])
        with task_scope(context.lineage, "speed_layer/views"):
            silver = lakehouse.read_stream(spark, paths.silver)
        views_batch = ViewsBatch(config, context, views_id)
        views = started(silver, f"{name}_views", views_batch, views_id, config.speed.views_trigger_interval)
        if available_now:
            _await(views, handlers[f"{name}_views"])
        else:
            _run_until_stopped([ingest, views], context.stop)
        recorder.wait_for([*ingests, views])  # every run of the ingest query: the Kinesis source's reruns too
    audit_failure = batch.close()
    for query in (ingest, views):
        failure = query.exception()
        if failure is not None:
            handlers[query.name].reraise(JobFailedError(f"the speed layer's query {query.name} failed: {failure}"))
    if audit_failure is not None:
        raise audit_failure
    batch.append_audit(spark, run_metadata(context, "audit/stream_progress"))
    result = JobResult(job=context.job, run_id=context.run_id, writes=_writes_of_run(spark, config, context, versions))
    result.metrics["source"] = config.speed.source
    if added:
        result.metrics["silver_columns_added"] = ", ".join(added)
    result.metrics["query_id"] = str(ingest.id)
    return result
