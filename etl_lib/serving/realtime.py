"""The real-time store: the latest metrics of each customer in Redis, written by the speed layer.

Each micro-batch of the speed layer writes, for the customers it touched, their totals as the gold views
hold them after the batch (absolute values, not increments), so writing a batch again after a failure
leaves the same values. Lookups answer from Redis and fall back to the Delta tables.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl_lib.config import RealtimeStoreConfig, RedisServiceConfig, SuiteConfig, secret_from_env

log = logging.getLogger(__name__)

Step = Callable[[DataFrame], DataFrame]

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


def write_partition(
    rows: Iterable[Any], store: RealtimeStoreConfig, redis: RedisServiceConfig, password: str | None
) -> int:
    """Write one partition's customers in pipelined round trips; returns how many were written.

    Each customer's key is replaced whole (DEL then HSET in one MULTI/EXEC), so a field that became empty
    does not linger and a reader never sees half a customer.
    """
    import redis as redis_py

    client = redis_py.Redis(host=redis.host, port=redis.port, db=redis.db, password=password, ssl=redis.tls)
    written = 0
    pipe = client.pipeline(transaction=True)
    try:
        for row in rows:
            key = store.key_prefix + str(row["customer_id"])
            pipe.delete(key)
            pipe.hset(key, mapping=hash_of(row.asDict()))  # type: ignore[arg-type]
            if store.ttl_seconds:
                pipe.expire(key, store.ttl_seconds)
            written += 1
            if written % store.pipeline_size == 0:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    return written


def publish(metrics: DataFrame, config: SuiteConfig) -> None:
    """Write ``metrics`` (rows of :data:`FIELDS`) to the real-time store, from the executors.

    Raises:
        redis.exceptions.ConnectionError: if the server cannot be reached; the micro-batch then fails and is
            run again on restart, its Delta writes being idempotent.
    """
    store, redis = config.serving.realtime_store, config.services.redis
    # Read on the driver: executors of a cluster need not have the variable.
    password = secret_from_env(redis.password_env)

    def write(rows: Iterator[Any]) -> None:
        write_partition(rows, store, redis, password)

    metrics.foreachPartition(write)


def lookup(config: SuiteConfig, customer_id: str) -> tuple[str, dict[str, Any] | None]:
    """A customer's latest metrics: ``("redis", fields)``, else from the Delta views ``("delta", fields)``.

    Redis is asked first; when it has no entry or cannot be reached the answer is read from
    ``gold/customer_value`` and ``gold/customer_sessions`` with DuckDB (no Spark). ``(source, None)`` when
    neither knows the customer. Both give the latest session's values (Spark's ``max_by``): DuckDB's
    ``arg_max_null``, as ``arg_max`` would skip a latest session without a page view for an older one's page.
    """
    from etl_lib.services.redis import redis_client

    store = config.serving.realtime_store
    try:
        found = redis_client(config.services.redis, timeout=2.0).hgetall(store.key_prefix + customer_id)
        if found:
            return "redis", dict(found)
    except Exception as error:  # noqa: BLE001 - an unreachable store is what the fallback is for
        log.warning("real-time store %s not reachable (%s); answering from Delta", config.services.redis.url, error)
    return "delta", _from_delta(config, customer_id)


def _from_delta(config: SuiteConfig, customer_id: str) -> dict[str, Any] | None:
    from etl_lib.portable import duckdb_query, is_table

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
