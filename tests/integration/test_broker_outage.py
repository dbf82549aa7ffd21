"""The Kafka broker stopped for 30 s under a running speed layer, then started again: nothing lost, nothing twice."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from etl_lib.config import SuiteConfig
from etl_lib.producer.events import encode, retail_events
from etl_lib.producer.sinks import KafkaSink
from etl_lib.services.kafka import KafkaService
from tests.waiting import wait_until

# A fault scenario of the suite's recovery code, on the primary line; the other line's Kafka connector runs in
# test_speed_streams (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
BEFORE, AFTER = 1_500, 1_500
OUTAGE_SECONDS = 30
LEASE_SECONDS = 15


def rows(table: Path) -> int:
    """Rows of a Delta table as another engine reads it, 0 before its first commit."""
    try:
        return int(DeltaTable(str(table)).to_pyarrow_dataset().count_rows())
    except Exception:  # noqa: BLE001 - no table yet
        return 0


def speed_layer(arguments: list[str], root: Path, topic: str, work_dir: str, log: Path) -> subprocess.Popen[bytes]:
    """The job as a process of its own, its output going to ``log`` (a pipe nobody reads could fill up)."""
    command = [
        str(Path(sys.executable).parent / "etl-suite"),
        "run",
        "speed_layer",
        *arguments,
        "--conf",
        str(PROJECT / "conf" / "test.yaml"),
        "--set",
        f"lakehouse.root={root}",
        "--set",
        f"services.work_dir={work_dir}",
        "--set",
        "speed.source=kafka",
        "--set",
        f"speed.kafka.topic={topic}",
        "--set",
        "speed.trigger_interval=1 second",
        # A short lease, so that the lock of this long-running job is renewed several times during the test.
        "--set",
        f"run.lock_lease_seconds={LEASE_SECONDS}",
    ]
    with log.open("wb") as output:
        return subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            start_new_session=True,
        )


@pytest.mark.slow
def test_a_broker_outage_mid_stream_loses_and_repeats_nothing(
    suite_config: SuiteConfig, kafka: KafkaService, tmp_path: Path
) -> None:
    topic = f"outage-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), BEFORE + AFTER))
    sink = KafkaSink(kafka.endpoint, topic, 2)
    sink.send([(e["customer_id"], encode(e)) for e in produced[:BEFORE]])
    root = tmp_path / "lake"
    bronze = root / "bronze" / "events"
    work_dir = suite_config.services.work_dir

    log = tmp_path / "speed_layer.log"
    running = speed_layer([], root, topic, work_dir, log)

    def before_in_bronze() -> bool:
        assert running.poll() is None or rows(bronze) >= BEFORE, log.read_text()[-5000:]
        return rows(bronze) >= BEFORE

    try:
        wait_until(before_in_bronze, "events before the outage in bronze", timeout=240, poll=0.5)
        assert rows(bronze) == BEFORE, log.read_text()[-5000:]

        kafka.down()
        time.sleep(OUTAGE_SECONDS)
        kafka.up()
        sink = KafkaSink(kafka.endpoint, topic, 2)
        sink.send([(e["customer_id"], encode(e)) for e in produced[BEFORE:]])

        # Either the running query picks the stream up again, or it has failed with a clear last line.
        deadline = time.monotonic() + 240
        while rows(bronze) < BEFORE + AFTER and time.monotonic() < deadline and running.poll() is None:
            time.sleep(0.5)
        recovered = running.poll() is None
        if recovered:
            running.send_signal(signal.SIGTERM)  # the job stops its queries between micro-batches
        running.wait(timeout=120)
    finally:
        if running.poll() is None:
            os.killpg(running.pid, signal.SIGKILL)
        kafka.up()
    output = log.read_text()
    if recovered:
        assert running.returncode == 0, output[-5000:]
    else:
        last = output.strip().splitlines()[-1]
        assert last.startswith("error: "), output[-5000:]
        # Started again after the outage, it resumes where its checkpoint says.
        again = speed_layer(["--available-now"], root, topic, work_dir, tmp_path / "again.log")
        assert again.wait(timeout=600) == 0, (tmp_path / "again.log").read_text()[-5000:]

    landed = DeltaTable(str(bronze)).to_pyarrow_table(columns=["_partition", "_offset"]).to_pylist()
    assert len(landed) == len({(r["_partition"], r["_offset"]) for r in landed}) == BEFORE + AFTER
    ids = DeltaTable(str(root / "silver" / "events")).to_pyarrow_table(columns=["event_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids)) == len({e["event_id"] for e in produced})

    # The speed lock was renewed all along (every third of its lease), the outage included, and released at the end.
    locks = sorted(DeltaTable(str(root / "audit" / "run_locks")).to_pyarrow_table().to_pylist(), key=lambda r: r["at"])
    held = [r["event"] for r in locks if r["run_id"] == locks[0]["run_id"]]  # the run that met the outage
    assert held[0] == "claimed", held
    assert held.count("renewed") >= OUTAGE_SECONDS // (LEASE_SECONDS // 3), held
    assert held[-1] == "released", held
