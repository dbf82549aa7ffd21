"""The real-time store: the latest metrics of each customer in Redis, written by the speed layer.

Each micro-batch of the speed layer writes, for the customers it touched, their totals as the gold views
hold them after the batch (absolute values, not increments), so writing a batch again after a failure
leaves the same values. Lookups answer from Redis and fall back to the Delta tables. Redis out of reach
never stops the stream: the write is given up and recorded (:func:`publish`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl_lib.config import RealtimeStoreConfig, RedisServiceConfig, SinksConfig, SuiteConfig, secret_from_env
from etl_lib.io import degraded
from etl_lib.io.degraded import Origin, SinkFailure, SinkGuard
from etl_lib.layers import Step

log = logging.getLogger(__name__)


#: The fields of a customer's hash, in order.
FIELDS = (
    "customer_id",
    "lifetime_value",
    "purchase_count",
    "first_purchase_at",
    "last_purchase_at",
    "sessions",
    "last_session_id",
    "current_page",
    "last_activity",
    "updated_batch",
    "updated_at",
)


def customer_metrics(values: DataFrame, sessions: DataFrame, batch_id: int, updated_at: dt.datetime) -> Step:
    """Step from the customers a batch touched (``customer_id``) to their latest metrics.

    Args:
        values: ``gold/customer_value`` (totals per customer).
        sessions: ``gold/customer_sessions`` (per customer and session).
        batch_id: the micro-batch, recorded with the values.
        updated_at: when the batch ran.
    """

    def step(touched: DataFrame) -> DataFrame:
        latest = F.max_by(
            F.struct("session_id", "current_page", "last_activity"), F.struct("last_activity", "session_id")
        )
        per_customer = sessions.groupBy("customer_id").agg(F.count(F.lit(1)).alias("sessions"), latest.alias("_latest"))
        return (
            touched.select("customer_id")
            .distinct()
            .join(values, "customer_id", "left")
            .join(per_customer, "customer_id", "left")
            .select(
                "customer_id",
                "lifetime_value",
                "purchase_count",
                "first_purchase_at",
                "last_purchase_at",
                "sessions",
                F.col("_latest.session_id").alias("last_session_id"),
                F.col("_latest.current_page").alias("current_page"),
                F.col("_latest.last_activity").alias("last_activity"),
                F.lit(batch_id).cast("bigint").alias("updated_batch"),
                F.lit(updated_at).cast("timestamp").alias("updated_at"),
            )
        )

    return step


def _text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        # UTC without an offset, as Spark gives timestamps in a UTC session.
        moment = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        return moment.isoformat()
    return str(value)


def hash_of(row: dict[str, Any]) -> dict[str, str]:
    """A customer's fields as Redis stores them (text; a missing value is no field)."""
    return {name: _text(row[name]) for name in FIELDS if row.get(name) is not None}


#: What a partition of a publish reports back: each customer the store did not take, its hash as JSON, and why.
UNWRITTEN_SCHEMA = "customer_id STRING, fields STRING, error STRING"


def write_hashes(
    hashes: Iterable[tuple[str, dict[str, str]]],
    store: RealtimeStoreConfig,
    redis: RedisServiceConfig,
    password: str | None,
    sinks: SinksConfig,
) -> int:
    """Write customers' hashes in pipelined round trips; returns how many were written.

    Each customer's key is replaced whole (DEL then HSET in one MULTI/EXEC), so a field that became empty
    does not linger and a reader never sees half a customer. redis-py retries a round trip as ``sinks`` says.

    Args:
        hashes: ``(customer id, hash)`` of each customer, the hash as field -> text (:func:`hash_of`).
        store: the ``serving.realtime_store`` section (key prefix, time to live, customers a round trip).
        redis: the Redis server to write to.
        password: the server's password; None for none.
        sinks: the ``sinks`` section: the retries and time-outs of a round trip.

    Raises:
        redis.exceptions.RedisError: when the server did not take a round trip after those retries.
    """
    import redis as redis_py

    client = redis_py.Redis(
        host=redis.host, port=redis.port, db=redis.db, password=password, ssl=redis.tls, **degraded.redis_options(sinks)
    )
    written = 0
    pipe = client.pipeline(transaction=True)
    try:
        for customer_id, fields in hashes:
            key = store.key_prefix + customer_id
            pipe.delete(key)
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            if store.ttl_seconds:
                pipe.expire(key, store.ttl_seconds)
            written += 1
            if written % store.pipeline_size == 0:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    return written


class Backlog:
    """Customers whose latest metrics the store did not take, to be written before the next batch's.

    Kept by the caller of :func:`publish` across micro-batches (in memory: a restart forgets it). A later
    batch's hash of a customer replaces an earlier one. While the backlog cannot be written, later batches are
    not written either but join it, so that the store never gets a customer's older values after newer ones.
    """

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def batches(self) -> list[int]:
        """The micro-batches whose values the backlog holds."""
        return sorted({int(fields["updated_batch"]) for fields in self.hashes.values() if "updated_batch" in fields})

    def add(self, hashes: dict[str, dict[str, str]]) -> None:
        """Keep ``hashes`` (customer id to hash), newer than those kept."""
        self.hashes.update(hashes)

    def clear(self) -> None:
        """Forget everything (it was written)."""
        self.hashes = {}


def _unwritten_rows(
    store: RealtimeStoreConfig,
    redis: RedisServiceConfig,
    password: str | None,
    sinks: SinksConfig,
    held_back: str | None,
) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """The executors' part of :func:`publish`: write a partition's customers; yield those not written.

    With ``held_back`` (why) nothing is written and every customer is yielded.
    """

    def write(batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import redis as redis_py

        hashes = [(str(row["customer_id"]), hash_of(row)) for batch in batches for row in batch.to_pylist()]
        error = held_back
        if error is None:
            try:
                write_hashes(hashes, store, redis, password, sinks)
                return
            except redis_py.RedisError as refused:
                error = f"{type(refused).__name__}: {refused}"
        if hashes:
            schema = pa.schema([("customer_id", pa.string()), ("fields", pa.string()), ("error", pa.string())])
            rows = [{"customer_id": c, "fields": json.dumps(fields), "error": error} for c, fields in hashes]
            yield pa.RecordBatch.from_pylist(rows, schema=schema)

    return write


def publish(
    metrics: DataFrame, config: SuiteConfig, *, origin: Origin | None = None, backlog: Backlog | None = None
) -> SinkFailure | None:
    """Write ``metrics`` (rows of :data:`FIELDS`) to the real-time store, from the executors.

    The store is a monitoring sink, the gold views are the record: a write Redis does not take (after the
    retries of ``sinks``) is given up, never raised, with one warning line and a row of ``audit/sink_failures``
    naming the micro-batch and the customers not written. With a ``backlog`` those customers are kept, and the
    next publish that reaches Redis writes them first; without one they keep their older values in Redis
    until a later batch touches them (or their time to live ends).

    Args:
        metrics: one row per customer, as :func:`customer_metrics` makes them.
        config: the suite configuration (store, server, ``sinks``, lakehouse for the failure rows).
        origin: run, job and micro-batch, for the failure row; the micro-batch is taken from the rows when
            not given.
        backlog: customers not written by earlier calls, kept across calls by the caller.

    Returns:
        The failure given up, or None when every customer (and the backlog) was written.
    """
    store, redis, sinks = config.serving.realtime_store, config.services.redis, config.sinks
    # Read on the driver: executors of a cluster need not have the variable.
    password = secret_from_env(redis.password_env)
    held_back: str | None = None
    if backlog:
        import redis as redis_py

        earlier = backlog.batches
        try:
            write_hashes(backlog.hashes.items(), store, redis, password, sinks)
        except redis_py.RedisError as refused:
            held_back = f"{type(refused).__name__}: {refused}"
        else:
            log.info("real-time store caught up: %d customers of micro-batches %s written", len(backlog), earlier)
            backlog.clear()
    write = _unwritten_rows(store, redis, password, sinks, held_back)
    unwritten = metrics.mapInArrow(write, UNWRITTEN_SCHEMA).collect()
    if not unwritten and held_back is None:
        return None
    hashes = {str(row["customer_id"]): dict(json.loads(row["fields"])) for row in unwritten}
    error = held_back or str(unwritten[0]["error"])
    batches = sorted({int(fields["updated_batch"]) for fields in hashes.values() if "updated_batch" in fields})
    if origin is None:
        origin = Origin(batch_id=batches[0] if len(batches) == 1 else None)
    sending = f"the latest metrics of {len(hashes)} customers (micro-batch {', '.join(map(str, batches)) or '-'})"
    if backlog is not None:
        backlog.add(hashes)
        sending += f"; {len(backlog)} customers of micro-batches {backlog.batches} kept for the next batch"
    else:
        sending += "; they keep their older values in Redis until a later batch touches them"
    guard = SinkGuard(sinks, origin)
    failure = guard.give_up("redis", sending, error, keys=sorted(hashes))
    degraded.record(metrics.sparkSession, config.lakehouse, guard.drain())
    return failure


def lookup(config: SuiteConfig, customer_id: str) -> tuple[str, dict[str, Any] | None]:
    """A customer's latest metrics: ``("redis", fields)``, else from the Delta views ``("delta", fields)``.

    Redis is asked first; when it has no entry or cannot be reached the answer is read from
    ``gold/customer_value`` and ``gold/customer_sessions`` with DuckDB (no Spark). ``(source, None)`` when
    neither knows the customer. Both give the latest session's values (Spark's ``max_by``): DuckDB's
    ``arg_max_null``, as ``arg_max`` would skip a latest session without a page view for an older one's page.
    """
    from etl_lib.io.clients import redis_client

    store = config.serving.realtime_store
    try:
        found = redis_client(config.services.redis, timeout=2.0).hgetall(store.key_prefix + customer_id)
        if found:
            return "redis", dict(found)
    except Exception as error:  # noqa: BLE001 - an unreachable store is what the fallback is for
        log.warning("real-time store %s not reachable (%s); answering from Delta", config.services.redis.url, error)
    return "delta", _from_delta(config, customer_id)


def _from_delta(config: SuiteConfig, customer_id: str) -> dict[str, Any] | None:
    from etl_lib.io.portable import duckdb_query, is_table

    lake = config.lakehouse
    values, sessions = lake.table_path("gold", "customer_value"), lake.table_path("gold", "customer_sessions")
    if not is_table(values) or not is_table(sessions):
        return None
    rows = duckdb_query(
        """
        SELECT c.customer_id, v.lifetime_value, v.purchase_count, v.first_purchase_at, v.last_purchase_at,
               s.sessions, s.last_session_id, s.current_page, s.last_activity
        FROM (SELECT ?::VARCHAR AS customer_id) c
        LEFT JOIN v ON v.customer_id = c.customer_id
        LEFT JOIN (
            SELECT customer_id, count(*) AS sessions,
                   arg_max_null(session_id, (last_activity, session_id)) AS last_session_id,
                   arg_max_null(current_page, (last_activity, session_id)) AS current_page,
                   max(last_activity) AS last_activity
            FROM s WHERE customer_id = ? GROUP BY customer_id
        ) s ON s.customer_id = c.customer_id
        """,
        [customer_id, customer_id],
        v=values,
        s=sessions,
    )
    names = FIELDS[:9]
    row = dict(zip(names, rows[0], strict=True))
    if row["purchase_count"] is None and row["sessions"] is None:
        return None
    return {name: _text(value) for name, value in row.items() if value is not None}
