"""Relational databases over JDBC, extracted incrementally by a high-water mark.

A run asks the database for the newest watermark value and the number of rows past the committed
mark, then reads exactly the rows between the two (later inserts wait for the next run), in parallel
partitions when there are many. SQL is built from validated identifiers and typed mark values only.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import JdbcSourceConfig, SuiteConfig, secret_from_env, secrets
from etl_lib.errors import ConfigError, SourceUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

Mark = int | dt.datetime


@dataclass(frozen=True)
class Increment:
    """The rows one run extracts: watermark in ``(after, upto]``."""

    after: Mark | None
    upto: Mark
    rows: int
    query: str
    partition_bounds: tuple[Mark, Mark] | None


def jdbc_password(source: JdbcSourceConfig, name: str, config: SuiteConfig) -> str | None:
    """The source's password, or None when it has none.

    It is the secret ``password_secret`` names, else ``$<password_env>``, else the first line of
    ``password_file``. Whatever is found is scrubbed from logs and audit rows from then on.

    Raises:
        ConfigError: if a password source is configured but yields nothing.
    """
    if source.password_secret:
        return secrets.resolve(source.password_secret, config, f"sources.{name}.password_secret")
    if source.password_env:
        value = secret_from_env(source.password_env)
        if value:
            return value
    if source.password_file:
        value = secrets.first_line(Path(source.password_file), f"sources.{name}.password_file")
        if value:
            return secrets.remember(value)
    if source.password_env or source.password_file:
        raise ConfigError(
            f"sources.{name}: no password: set ${source.password_env or '<password_env>'}"
            + (f" or create {source.password_file}" if source.password_file else "")
        )
    return None


def quote_name(qualified: str) -> str:
    """``schema.table`` -> ``"schema"."table"`` (names are validated when the config loads)."""
    return ".".join(quote_column(part) for part in qualified.split("."))


def quote_column(name: str) -> str:
    """A column's name as an SQL identifier in double quotes, whatever its characters (``"Last Modified"``)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Mark) -> str:
    """A typed mark as an SQL literal."""
    if isinstance(value, bool):
        raise TypeError("a watermark cannot be boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.replace(tzinfo=None).isoformat(sep=' ')}'"
    raise TypeError(f"unsupported watermark type {type(value).__name__}")


def _as_mark(value: object, what: str) -> Mark:
    if isinstance(value, bool):
        raise ConfigError(f"{what}: a boolean column cannot be a watermark")
    if isinstance(value, int | dt.datetime):
        return value
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    raise ConfigError(f"{what}: watermark values must be integers or timestamps, found {type(value).__name__}")


def connection_options(source: JdbcSourceConfig, name: str, config: SuiteConfig) -> dict[str, str]:
    """Spark JDBC options of ``source``: URL, driver, user, fetch size and the password, if any."""
    options = {"url": source.url, "driver": source.driver, "user": source.user, "fetchsize": str(source.fetch_size)}
    password = jdbc_password(source, name, config)
    if password is not None:
        options["password"] = password
    return options


#: Java exceptions that say the database could not be reached (worth another attempt), not that a query is wrong.
_UNREACHABLE = (
    "java.net.ConnectException",
    "java.net.SocketTimeoutException",
    "java.net.NoRouteToHostException",
    "java.net.UnknownHostException",
    "java.sql.SQLTransientConnectionException",
    "java.sql.SQLNonTransientConnectionException",
)


def _unreachable_cause(error: BaseException) -> str | None:
    """The message of the Java cause saying the database is unreachable, else None.

    SQLSTATE class 08 is "connection exception" and 57P01-57P03 are PostgreSQL shutting down or starting.
    """
    java = getattr(error, "java_exception", None)
    seen = 0
    while java is not None and seen < 20:
        seen += 1
        kind = str(java.getClass().getName())
        state = ""
        if hasattr(java, "getSQLState"):
            try:
                state = str(java.getSQLState() or "")
            except Exception:  # noqa: BLE001 - not every throwable answers; then it is not an SQL state
                state = ""
        if kind in _UNREACHABLE or state.startswith("08") or state in ("57P01", "57P02", "57P03"):
            return f"{kind}: {java.getMessage()}"
        java = java.getCause()
    return None


def with_retries(source: JdbcSourceConfig, name: str, action: Callable[[], T], sleep: Callable[[float], None]) -> T:
    """``action()``, tried up to ``connect_attempts`` times while the database cannot be reached.

    It waits ``retry_wait_seconds`` after the first failure and twice as long after each next one; any
    other error is raised at once.

    Args:
        source: the source (its URL, ``connect_attempts``, ``retry_wait_seconds``).
        name: the source's name (its key under ``sources``), for the messages.
        action: the call that reaches the database.
        sleep: waits the given seconds between attempts.

    Raises:
        SourceUnavailableError: when the last attempt could not reach the database either.
    """
    wait = source.retry_wait_seconds
    waited = 0.0
    for attempt in range(1, source.connect_attempts + 1):
        try:
            return action()
        except Exception as error:
            cause = _unreachable_cause(error)
            if cause is None:
                raise
            if attempt == source.connect_attempts:
                raise SourceUnavailableError(
                    f"sources.{name}: the database at {source.url} could not be reached after {attempt} "
                    f"attempt(s) over {waited:.0f} s ({cause}); nothing was read and the high-water mark "
                    "did not move"
                ) from None
            log.warning(
                "sources.%s: database unreachable (%s); attempt %d of %d in %.1f s",
                name,
                cause,
                attempt + 1,
                source.connect_attempts,
                wait,
            )
            sleep(wait)
            waited += wait
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def plan_increment(
    spark: SparkSession,
    source: JdbcSourceConfig,
    name: str,
    after: Mark | None,
    options: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
) -> Increment | None:
    """What the next run should read after mark ``after``; None when nothing new is there.

    One small query (an aggregate returning one row) runs on the database; it is the run's first contact
    with it, so it is retried while the database cannot be reached (:func:`with_retries`).

    Args:
        spark: the session.
        source: the source (its table, watermark and partition columns, retries).
        name: the source's name (its key under ``sources``), for the messages.
        after: the committed high-water mark; None to read the whole table.
        options: Spark JDBC options (:func:`connection_options`).
        sleep: waits the given seconds between attempts to reach the database.
    """
    table = quote_name(source.source_table)
    mark = quote_column(source.watermark_column)
    partition = quote_column(source.partition_column) if source.partition_column else mark
    where = f"{mark} > {sql_literal(after)}" if after is not None else "1 = 1"
    # Names are validated when the config loads and marks are typed values, never text from a user.
    probe = (
        f"SELECT MAX({mark}) AS upto, COUNT(*) AS n, MIN({partition}) AS lo, MAX({partition}) AS hi "  # noqa: S608
        f"FROM {table} WHERE {where}"
    )
    row = with_retries(
        source, name, lambda: spark.read.format("jdbc").options(**options).option("query", probe).load().first(), sleep
    )
    if row is None or int(row["n"]) == 0:
        return None
    upto = _as_mark(row["upto"], f"sources.{name}.watermark_column")
    query = f"SELECT * FROM {table} WHERE {where} AND {mark} <= {sql_literal(upto)}"  # noqa: S608
    rows = int(row["n"])
    bounds = None
    if source.partition_column and source.num_partitions > 1 and rows >= source.partition_threshold_rows:
        bounds = (
            _as_mark(row["lo"], f"sources.{name}.partition_column"),
            _as_mark(row["hi"], f"sources.{name}.partition_column"),
        )
    return Increment(after=after, upto=upto, rows=rows, query=query, partition_bounds=bounds)


def read_increment(
    spark: SparkSession, source: JdbcSourceConfig, increment: Increment, options: Mapping[str, str]
) -> DataFrame:
    """The rows of ``increment``, read by ``num_partitions`` connections when it is large.

    Args:
        spark: the session.
        source: the source (its partition column and ``num_partitions``).
        increment: what to read (:func:`plan_increment`); it has partition bounds when it is large.
        options: Spark JDBC options (:func:`connection_options`).
    """
    reader = spark.read.format("jdbc").options(**options)
    if increment.partition_bounds is None or source.partition_column is None:
        return reader.option("query", increment.query).load()
    low, high = increment.partition_bounds
    return (
        reader.option("dbtable", f"({increment.query}) AS increment")
        .option("partitionColumn", source.partition_column)
        .option("lowerBound", str(low))
        .option("upperBound", str(high))
        .option("numPartitions", str(source.num_partitions))
        .load()
    )


def mark_to_text(mark: Mark) -> tuple[str, str]:
    """``(type, text)`` of a mark, as the bookmark table stores it."""
    if isinstance(mark, dt.datetime):
        return "timestamp", mark.isoformat()
    return "int", str(mark)


def mark_from_text(kind: str, text: str) -> Mark:
    """Inverse of :func:`mark_to_text`."""
    return dt.datetime.fromisoformat(text) if kind == "timestamp" else int(text)
