"""One run of a job at a time on a lakehouse: a lease kept in ``audit/run_locks``.

Two runs of the batch layer at once would both land the same increment and race on every table. So a job
that must run alone claims its lock before it starts, by appending a ``claimed`` row for the lock's next
*generation* with Delta's own idempotent-write id (``txnAppId = run-lock:<lock>``, ``txnVersion =
generation``). Delta lets exactly one commit record a given version of an application id: a second claim
of the same generation is skipped or fails with a concurrent-transaction conflict, on any storage where
Delta's commits are atomic. Each claimant looks for its claim's commit among the table's newest commits to
learn whether it won, and reads the generation back from the rows when it is not there.

A holder renews its lease (``renewed`` rows) while it runs and appends ``released`` when it ends. A lock
is free when its newest generation was released, when its lease ran out (the holder died where nobody can
see its process: another machine, a cluster), or when its holder's process no longer runs on this machine
(a SIGKILL, an out-of-memory kill). The run that takes over a dead holder's lock says so, so the dead run
can be recorded as abandoned.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.errors import EtlSuiteError, RunLockedError
from etl_lib.io import lakehouse

log = logging.getLogger(__name__)

SCHEMA = (
    "lock STRING, generation BIGINT, event STRING, run_id STRING, job STRING, host STRING, pid INT, at TIMESTAMP, "
    "expires_at TIMESTAMP"
)
#: How often a waiting run looks at the lock again.
POLL_SECONDS = 2.0
#: How many of the lock table's newest commits a claimant looks through for its claim's before reading the rows.
CLAIM_LOOKBACK = 10


@dataclass(frozen=True)
class Holder:
    """The newest generation of a lock: who claimed it, and whether it still holds it."""

    lock: str
    generation: int
    run_id: str
    job: str
    host: str
    pid: int
    since: dt.datetime
    expires_at: dt.datetime
    released: bool

    def describe(self) -> str:
        """The holder in words, for messages."""
        return (
            f"run {self.run_id} of {self.job} (pid {self.pid} on {self.host}, "
            f"since {self.since:%Y-%m-%d %H:%M:%S} UTC, lease until {self.expires_at:%H:%M:%S} UTC)"
        )


def _utc(moment: dt.datetime) -> dt.datetime:
    # PySpark hands timestamps back as naive local times of this process: astimezone reads them so.
    return moment.astimezone(dt.UTC)


def process_runs(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def why_free(holder: Holder | None, now: dt.datetime, this_host: str) -> str | None:
    """Why a lock whose newest generation is ``holder`` may be claimed, or None while it is held.

    Args:
        holder: the lock's newest generation (:func:`holder_of`); None when it was never claimed.
        now: the current time, aware, to compare with the lease's end.
        this_host: this machine's host name: a holder on it is free once its process no longer runs.
    """
    if holder is None:
        return "never claimed"
    if holder.released:
        return "released"
    if holder.expires_at < now:
        return f"{holder.describe()} did not renew its lease"
    if holder.host == this_host and not process_runs(holder.pid):
        return f"{holder.describe()} no longer runs"
    return None


def _row(
    spark: SparkSession, lock: str, generation: int, event: str, run_id: str, job: str, now: dt.datetime, lease: float
) -> DataFrame:
    """One row of the lock table: this process's ``event`` on ``generation``, its lease running from ``now``."""
    expires = now + dt.timedelta(seconds=lease)
    row = (lock, generation, event, run_id, job, socket.gethostname(), os.getpid(), now, expires)
    return spark.createDataFrame([row], SCHEMA)


def holder_of(spark: SparkSession, path: str, lock: str) -> Holder | None:
    """The newest generation of ``lock``, or None if it was never claimed."""
    if not lakehouse.is_delta_table(spark, path):
        return None
    # A lock's rows are a few per run (claim, renewals, release): read whole, with no shuffle, in one job.
    every = spark.read.format("delta").load(path).where(F.col("lock") == lock).collect()
    if not every:
        return None
    generation = max(int(row["generation"]) for row in every)
    found = [row for row in every if row["generation"] == generation]
    claims = sorted((r for r in found if r["event"] == "claimed"), key=lambda r: r["at"])
    if not claims:  # rows are appended claim first, so only a hand edit leaves a generation without one
        raise EtlSuiteError(f"{path}: generation {generation} of lock {lock} has no claim; the table was edited")
    claim = claims[0]
    return Holder(
        lock=lock,
        generation=generation,
        run_id=claim["run_id"],
        job=claim["job"],
        host=claim["host"],
        pid=int(claim["pid"]),
        since=_utc(claim["at"]),
        expires_at=max(_utc(r["expires_at"]) for r in found if r["run_id"] == claim["run_id"]),
        released=any(r["event"] == "released" and r["run_id"] == claim["run_id"] for r in found),
    )


@dataclass
class Lease:
    """A lock this run holds: renewed in the background until :meth:`release`.

    ``spark`` is a session of its own (:func:`acquire` makes one): the job's session carries settings
    (Delta's transaction id, commit metadata) that would otherwise apply to a renewal written while the job
    is inside them.
    """

    spark: SparkSession
    path: str
    lock: str
    generation: int
    run_id: str
    job: str
    lease_seconds: float
    clock: Callable[[], dt.datetime]
    #: The holder this run took the lock from, when that run ended without releasing it.
    took_over: Holder | None = None
    reason: str = ""
    #: The run that took the lock over while this one still ran (it failed to renew for a whole lease).
    lost: Holder | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_until_released, name=f"lease-{self.lock}", daemon=True)
        self._renewer.start()

    def _write(self, event: str) -> None:
        row = _row(
            self.spark, self.lock, self.generation, event, self.run_id, self.job, self.clock(), self.lease_seconds
        )
        lakehouse.append_retrying(row, self.path)

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self._write("renewed")
                holder = holder_of(self.spark, self.path, self.lock)
            except Exception as error:  # noqa: BLE001 - the job goes on; the next renewal may succeed
                log.warning("could not renew the lock %s of run %s: %s", self.lock, self.run_id, error)
                continue
            if holder is not None and holder.generation != self.generation:
                # Renewals failed for a whole lease (or this process stalled that long): another run took over.
                self.lost = holder
                log.error(
                    "run %s lost the lock %s to %s; both may now write", self.run_id, self.lock, holder.describe()
                )
                return

    def release(self) -> None:
        """Give the lock back (idempotent); a lock another run took over is left to it."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._renewer.join(timeout=120)
        if self.lost is None:
            self._write("released")


def acquire(
    spark: SparkSession,
    path: str,
    lock: str,
    run_id: str,
    wait_seconds: float,
    lease_seconds: float,
    job: str = "",
    clock: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Claim ``lock`` for run ``run_id`` of ``job``, waiting up to ``wait_seconds`` for its holder to end.

    Args:
        spark: the session; the claim and the renewals use a new session of it.
        path: the lock table (``audit/run_locks``).
        lock: the lock's name; runs sharing it run one at a time.
        run_id: the run claiming it.
        wait_seconds: how long to wait for the holder to end, in seconds; 0 to fail at once.
        lease_seconds: how long a claim or renewal holds the lock, in seconds; it is renewed every third of it.
        job: the job of the run, for the rows and the messages.
        clock: the current time, UTC; None for the system clock.
        sleep: waits the given seconds between looks at the lock.

    Raises:
        RunLockedError: when another run still holds it after ``wait_seconds``, naming that run.
        EtlSuiteError: when the lock's rows were removed by hand while Delta still remembers its claims.
    """
    now_of = clock or (lambda: dt.datetime.now(dt.UTC))
    spark = spark.newSession()  # none of the caller's session settings (a transaction id) applies to a claim
    host = socket.gethostname()
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        attempt += 1
        if attempt > 1:  # a claim lost to another run's, or a holder still running: look again shortly
            left = deadline - time.monotonic()
            if attempt > 20 and left <= 0:
                raise RunLockedError(f"{lock}: no claim of the lock succeeded in {attempt - 1} attempts")
            sleep(min(POLL_SECONDS, max(left, 0.1)))
        holder = holder_of(spark, path, lock)
        reason = why_free(holder, now_of(), host)
        if reason is None:
            assert holder is not None
            if deadline - time.monotonic() <= 0:
                raise RunLockedError(
                    f"{lock} is already running: {holder.describe()}; this run did not start its work. "
                    "Run it again once that run ends, or set run.lock_wait_seconds to wait for it"
                )
            continue
        lease = _claim(spark, path, lock, holder, run_id, job, now_of, lease_seconds, reason)
        if lease is not None:
            return lease


def _claim(
    spark: SparkSession,
    path: str,
    lock: str,
    holder: Holder | None,
    run_id: str,
    job: str,
    now_of: Callable[[], dt.datetime],
    lease_seconds: float,
    reason: str,
) -> Lease | None:
    """Write the claim of the generation after ``holder``'s: the lease if this run won it, None if another did."""
    generation = holder.generation + 1 if holder else 0
    claim = _row(spark, lock, generation, "claimed", run_id, job, now_of(), lease_seconds)
    mark = {"lock": lock, "generation": generation, "claimed_by": run_id}
    try:
        lakehouse.append(claim, path, (f"run-lock:{lock}", generation), partition_by=("lock",), metadata=mark)
    except Exception as error:
        if not lakehouse.is_conflict(error):
            raise
        return None  # another claim of this generation committed first
    dead = holder if holder is not None and not holder.released else None
    # A commit of this claim means this run won the generation: Delta commits a version of an application id
    # once. It is looked for among the newest commits of the log (a tenth of a second) before the rows are read
    # back: the table has just changed, and reading its rows makes Delta rebuild its file list first.
    if any(commit.user_metadata == mark for commit in lakehouse.newest_commits(spark, path, CLAIM_LOOKBACK)):
        return Lease(spark, path, lock, generation, run_id, job, lease_seconds, now_of, took_over=dead, reason=reason)
    won = holder_of(spark, path, lock)
    if won is None or won.generation < generation:
        # Delta skipped the claim as a version it had already committed: rows were deleted by hand.
        raise EtlSuiteError(
            f"{path}: rows of lock {lock} were deleted, but Delta still remembers its claims, so no new claim "
            "can be written; remove the whole table to reset the lock"
        )
    if won.generation == generation and won.run_id == run_id:
        return Lease(spark, path, lock, generation, run_id, job, lease_seconds, now_of, took_over=dead, reason=reason)
    return None
