"""The run lock: one run of a job at a time, a dead holder's lock taken over, a race won by exactly one run."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig
from etl_lib.errors import RunLockedError
from etl_lib.io import lakehouse
from etl_lib.runtime import run_lock
from etl_lib.runtime.governance import Governance
from etl_lib.runtime.registry import JobSpec
from etl_lib.runtime.runner import run_job
from tests.waiting import wait_until


def _planted_claim(spark: SparkSession, path: str, host: str, pid: int, expires: dt.datetime) -> None:
    """A claim left by a run that never released it."""
    now = dt.datetime.now(dt.UTC)
    row = ("batch", 0, "claimed", "dead-run", "ingest_files", host, pid, now - dt.timedelta(minutes=5), expires)
    lakehouse.append(spark.createDataFrame([row], run_lock.SCHEMA), path, partition_by=("lock",))


def _finished_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_held_lock_refuses_a_second_run_naming_the_holder_until_released(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    first = run_lock.acquire(spark, path, "batch", "run-a", wait_seconds=0, lease_seconds=60, job="batch_layer")
    assert (first.generation, first.took_over) == (0, None)

    with pytest.raises(RunLockedError) as refused:
        run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=0, lease_seconds=60)
    assert str(refused.value).startswith(f"batch is already running: run run-a of batch_layer (pid {os.getpid()} on ")
    assert refused.value.exit_code == 75
    # Another lock is another matter.
    run_lock.acquire(spark, path, "speed", "run-c", wait_seconds=0, lease_seconds=60).release()

    first.release()
    second = run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=0, lease_seconds=60)
    assert (second.generation, second.took_over) == (1, None)
    second.release()
    holder = run_lock.holder_of(spark, path, "batch")
    assert holder is not None
    assert (holder.run_id, holder.generation, holder.released) == ("run-b", 1, True)


def test_a_waiting_run_starts_when_the_holder_releases(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    first = run_lock.acquire(spark, path, "batch", "run-a", wait_seconds=0, lease_seconds=60)
    threading.Timer(3.0, first.release).start()
    started = time.monotonic()
    second = run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=120, lease_seconds=60)
    assert time.monotonic() - started >= 2.5
    assert (second.run_id, second.generation, second.took_over) == ("run-b", 1, None)
    second.release()


def test_the_lock_of_a_process_that_died_here_is_taken_over_at_once(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    dead = _finished_pid()
    _planted_claim(spark, path, socket.gethostname(), dead, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))

    lease = run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=0, lease_seconds=60)
    assert lease.took_over is not None
    assert lease.took_over.run_id == "dead-run"
    since = f"{lease.took_over.since:%Y-%m-%d %H:%M:%S}"
    until = f"{lease.took_over.expires_at:%H:%M:%S}"
    expected = f"(pid {dead} on {socket.gethostname()}, since {since} UTC, lease until {until} UTC) no longer runs"
    assert lease.reason.endswith(expected)
    assert lease.generation == 1
    lease.release()


def test_a_holder_elsewhere_keeps_the_lock_until_its_lease_runs_out(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    # A holder on another machine: its pid means nothing here, only its lease counts.
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    _planted_claim(spark, path, "another-host", 1, expires)
    with pytest.raises(RunLockedError, match="run dead-run of ingest_files \\(pid 1 on another-host"):
        run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=0, lease_seconds=60)
    later = expires + dt.timedelta(seconds=1)
    lease = run_lock.acquire(spark, path, "batch", "run-b", wait_seconds=0, lease_seconds=60, clock=lambda: later)
    assert lease.took_over is not None
    assert lease.took_over.job == "ingest_files"
    assert "did not renew its lease" in lease.reason
    lease.release()


def test_a_holder_renews_its_lease_while_it_runs(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    lease = run_lock.acquire(spark, path, "batch", "run-a", wait_seconds=0, lease_seconds=3)
    first = run_lock.holder_of(spark, path, "batch")
    assert first is not None

    def renewed_holder() -> run_lock.Holder | None:
        holder = run_lock.holder_of(spark, path, "batch")
        return holder if holder is not None and holder.expires_at > first.expires_at else None

    renewed = wait_until(renewed_holder, "renewal of a 3-second lease", timeout=30, poll=0.5)
    assert not renewed.released
    lease.release()
    rows = spark.read.format("delta").load(path).groupBy("event").count().collect()
    counts = {row["event"]: row["count"] for row in rows}
    assert counts["claimed"] == 1
    assert counts["released"] == 1
    assert counts["renewed"] >= 1


def test_of_runs_racing_for_a_free_lock_exactly_one_wins(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "run_locks")
    run_lock.acquire(spark, path, "batch", "warm-up", wait_seconds=0, lease_seconds=60).release()
    barrier = threading.Barrier(3)
    outcomes: dict[str, object] = {}

    def claim(run_id: str) -> None:
        barrier.wait()
        try:
            outcomes[run_id] = run_lock.acquire(spark, path, "batch", run_id, wait_seconds=0, lease_seconds=60)
        except RunLockedError as error:
            outcomes[run_id] = error

    racers = [threading.Thread(target=claim, args=(f"racer-{i}",)) for i in range(3)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    winners = [lease for lease in outcomes.values() if isinstance(lease, run_lock.Lease)]
    assert len(outcomes) == 3
    assert len(winners) == 1
    for outcome in outcomes.values():
        if outcome is not winners[0]:
            assert isinstance(outcome, RunLockedError)
            assert winners[0].run_id in str(outcome)
    holder = run_lock.holder_of(spark, path, "batch")
    assert holder is not None
    assert (holder.run_id, holder.generation) == (winners[0].run_id, 1)
    winners[0].release()


def test_a_second_claim_of_a_generation_is_not_committed(spark: SparkSession, tmp_path: Path) -> None:
    # What makes the race safe: Delta commits one write per (txnAppId, txnVersion), so a run that read the
    # lock as free just before another claimed it cannot claim the same generation again.
    path = str(tmp_path / "run_locks")
    lease = run_lock.acquire(spark, path, "batch", "run-a", wait_seconds=0, lease_seconds=60)
    now = dt.datetime.now(dt.UTC)
    late = ("batch", 0, "claimed", "run-z", "x", "h", 1, now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=1))
    lakehouse.append(spark.createDataFrame([late], run_lock.SCHEMA), path, ("run-lock:batch", 0))
    claims = spark.read.format("delta").load(path).where("event = 'claimed'").select("run_id").collect()
    assert [row["run_id"] for row in claims] == ["run-a"]
    lease.release()


def test_a_run_whose_start_cannot_be_recorded_does_no_work_and_leaves_its_lock_free(
    spark: SparkSession, lake: SuiteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's start is recorded while its lock is taken: a start that fails gives the lock back.
    def unrecordable(self: Governance) -> None:
        raise OSError("audit/etl_runs cannot be written")

    ran: list[object] = []
    monkeypatch.setattr(Governance, "started", unrecordable)
    monkeypatch.setattr(JobSpec, "load", lambda self: lambda *args: ran.append(args))

    with pytest.raises(OSError, match="cannot be written"):
        run_job("ingest_files", lake, spark)

    assert ran == []
    holder = run_lock.holder_of(spark, lake.lakehouse.table_path("audit", "run_locks"), "batch")
    assert holder is None or holder.released, holder
