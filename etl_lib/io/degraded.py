"""Monitoring and alerting sinks that cannot be reached: retried briefly, then given up, never raised.

CloudWatch, SNS, the OpenLineage HTTP endpoint and the real-time store (Redis) watch the data; none of them
is the data. A call to one is retried with exponential backoff and jitter as ``sinks`` says: by the client
itself where it can be told to (botocore, redis-py), by :class:`SinkGuard` otherwise. A call that still fails
is given up: one warning line naming the sink and the error, and a row of ``audit/sink_failures`` (sink, what
was being sent, error, attempts, time, run, job, micro-batch), and the run goes on. The count of a run's
failures per sink also lands in its ``audit/etl_runs`` row (metrics ``sink_failures``, ``sink_failures_<sink>``).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl_lib.config import LakehouseConfig, SinksConfig, secrets
from etl_lib.core.run import utc_now
from etl_lib.errors import explain

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

#: ``audit/sink_failures``: one row per call given up.
SINK_FAILURES_SCHEMA = (
    "sink STRING, sending STRING, keys ARRAY<STRING>, error STRING, attempts INT, failed_at TIMESTAMP, "
    "run_id STRING, job STRING, batch_id BIGINT"
)


@dataclass(frozen=True)
class Origin:
    """Who was sending: the run and the job (None where the caller does not know them), and the micro-batch."""

    run_id: str | None = None
    job: str | None = None
    batch_id: int | None = None


@dataclass(frozen=True)
class SinkFailure:
    """A call to a sink that was given up: one row of ``audit/sink_failures``."""

    sink: str
    #: What was being sent, in words ("quality metrics of silver/events").
    sending: str
    #: The last error, on one line, secrets scrubbed.
    error: str
    #: Calls made, the first one included.
    attempts: int
    failed_at: dt.datetime
    origin: Origin
    #: What was not delivered, by name where it has one (the customers of a real-time store write).
    keys: tuple[str, ...] = ()

    def row(self) -> tuple[object, ...]:
        """The row of ``audit/sink_failures``, in the order of :data:`SINK_FAILURES_SCHEMA`."""
        origin = self.origin
        return (
            self.sink,
            self.sending,
            list(self.keys),
            self.error,
            self.attempts,
            self.failed_at,
            origin.run_id,
            origin.job,
            origin.batch_id,
        )

    @property
    def line(self) -> str:
        """The one warning line."""
        batch = "" if self.origin.batch_id is None else f" (micro-batch {self.origin.batch_id})"
        return (
            f"sink {self.sink} unreachable: gave up {self.sending}{batch} after {self.attempts} attempt"
            f"{'s' if self.attempts != 1 else ''}: {self.error}; the run goes on (audit/sink_failures)"
        )


def backoff_seconds(settings: SinksConfig, failures: int, jitter: Callable[[], float] = random.random) -> float:
    """The wait after ``failures`` failed calls in a row: full jitter below a doubling bound.

    The bound is ``first_backoff_seconds * 2 ** (failures - 1)``, at most ``max_backoff_seconds``; the wait is
    ``jitter()`` (uniform in [0, 1)) times the bound.

    Args:
        settings: the ``sinks`` section (first and largest wait, in seconds).
        failures: failed calls in a row so far, at least 1.
        jitter: a number in [0, 1) for each wait; tests pass a fixed one.
    """
    bound = min(settings.max_backoff_seconds, settings.first_backoff_seconds * 2.0 ** (failures - 1))
    return bound * jitter()


def _one_line(error: BaseException | str) -> str:
    text = explain(error) if isinstance(error, BaseException) else error
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return secrets.scrub(lines[0] if lines else "unknown error")


class SinkGuard:
    """Makes the calls of one sender (a run, a micro-batch) to monitoring and alerting sinks.

    A call that cannot be delivered is given up, logged once and kept in :attr:`failures` for the caller to
    record (:func:`record`) beside its own writes.
    """

    def __init__(
        self,
        settings: SinksConfig,
        origin: Origin,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] = utc_now,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.origin = origin
        self.failures: list[SinkFailure] = []
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter

    def send(
        self,
        sink: str,
        sending: str,
        call: Callable[[], object],
        gives_up_on: tuple[type[Exception], ...],
        *,
        client_attempts: Callable[[], int] | None = None,
        keys: Sequence[str] = (),
    ) -> bool:
        """Make ``call``; while it raises one of ``gives_up_on``, wait and call again; then give it up.

        Args:
            sink: the sink's name (``cloudwatch``, ``sns``, ``openlineage``, ``redis``).
            sending: what the call sends, in words, for the warning and the row.
            call: the call.
            gives_up_on: the errors that mean the sink did not take the call (refused, timed out, answered
                with an error). Any other error is the suite's own fault and is raised at once.
            client_attempts: given when the client retries by itself (botocore, redis-py, configured from the
                same settings): the call is made once here, and this tells how many calls the client made.
            keys: what the call sends, by name, for the row when it is given up.

        Returns:
            True when the sink took the call; False when it was given up (logged, and added to :attr:`failures`).
        """
        calls = 1 if client_attempts is not None else self.settings.attempts
        failed = 0
        while True:
            try:
                call()
            except gives_up_on as error:
                failed += 1
                if failed >= calls:
                    made = client_attempts() if client_attempts is not None else failed
                    self.give_up(sink, sending, error, keys, attempts=made)
                    return False
                wait = backoff_seconds(self.settings, failed, self._jitter)
                log.debug("sink %s: %s failed (%s); calling again in %.2f s", sink, sending, _one_line(error), wait)
                self._sleep(wait)
            else:
                return True

    def give_up(
        self,
        sink: str,
        sending: str,
        error: BaseException | str,
        keys: Iterable[str] = (),
        attempts: int | None = None,
    ) -> SinkFailure:
        """Give up a call the sink did not take: one warning line, and a failure kept in :attr:`failures`.

        Args:
            sink: the sink's name.
            sending: what was being sent, in words.
            error: the last error, or its text (when it was met on an executor).
            keys: what was not delivered, by name.
            attempts: calls made; the configured ``sinks.attempts`` when None.

        Returns:
            The failure.
        """
        failure = SinkFailure(
            sink=sink,
            sending=sending,
            error=_one_line(error),
            attempts=self.settings.attempts if attempts is None else attempts,
            failed_at=self._clock(),
            origin=self.origin,
            keys=tuple(keys),
        )
        self.failures.append(failure)
        log.warning("%s", failure.line)
        return failure

    def drain(self) -> list[SinkFailure]:
        """The failures given up so far, which the guard then forgets (each is recorded once)."""
        failures, self.failures = self.failures, []
        return failures


class RequestCounter:
    """Counts the HTTP requests a botocore client sends, its own retries included (for the row's attempts)."""

    def __init__(self, client: Any) -> None:
        self.count = 0
        client.meta.events.register("before-send", self._counted)

    def _counted(self, **_: Any) -> None:
        # Returning None lets botocore send the request as it is.
        self.count += 1

    def __call__(self) -> int:
        return self.count


def botocore_config(settings: SinksConfig) -> Any:
    """The settings of a botocore client from ``sinks``: its ``standard`` retry mode (jittered exponential backoff).

    botocore's own backoff (from 50 ms, doubling) applies; ``first_backoff_seconds`` and ``max_backoff_seconds``
    are for the clients without one.
    """
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.attempts},
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
    )


def aws_errors() -> tuple[type[Exception], ...]:
    """What botocore raises when a service did not take a call: unreachable, timed out, or refused it."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def redis_options(settings: SinksConfig) -> dict[str, Any]:
    """redis-py client options from ``sinks``: time-outs, and its own retry with exponential backoff and jitter."""
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    backoff = ExponentialWithJitterBackoff(cap=settings.max_backoff_seconds, base=settings.first_backoff_seconds)
    return {
        "socket_connect_timeout": settings.connect_timeout_seconds,
        "socket_timeout": settings.read_timeout_seconds,
        "retry": Retry(backoff, retries=settings.attempts - 1),
    }


def record(spark: SparkSession, lake: LakehouseConfig, failures: Sequence[SinkFailure]) -> None:
    """Append ``failures`` to ``audit/sink_failures`` in one commit (nothing when there are none).

    Not made idempotent on purpose: a replayed micro-batch that gives a call up again met the outage again.
    """
    if not failures:
        return
    from etl_lib.io import lakehouse

    frame = spark.createDataFrame([failure.row() for failure in failures], SINK_FAILURES_SCHEMA)
    lakehouse.append_retrying(frame, lake.table_path("audit", "sink_failures"))


def counts_of_run(spark: SparkSession, lake: LakehouseConfig, run_id: str) -> dict[str, int]:
    """How many calls a run gave up, per sink, from ``audit/sink_failures`` (empty when none)."""
    from pyspark.sql import functions as F

    from etl_lib.io import lakehouse

    path = lake.table_path("audit", "sink_failures")
    if not lakehouse.is_delta_table(spark, path):
        return {}
    rows = lakehouse.read(spark, path).where(F.col("run_id") == run_id).groupBy("sink").count().collect()
    return {str(row["sink"]): int(row["count"]) for row in rows}


def run_metrics(counts: dict[str, int]) -> dict[str, int]:
    """The metrics of a run's record for its given-up calls: ``sink_failures`` and ``sink_failures_<sink>``."""
    if not counts:
        return {}
    return {"sink_failures": sum(counts.values()), **{f"sink_failures_{sink}": n for sink, n in sorted(counts.items())}}
