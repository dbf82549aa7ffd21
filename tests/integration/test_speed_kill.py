"""Exactly once, proven: the speed layer is killed with SIGKILL mid-stream and restarted, on Kafka and on Kinesis."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, load_config
from etl_lib.errors import RunLockedError
from etl_lib.io import lakehouse
from etl_lib.layers import events
from etl_lib.producer.events import retail_events
from etl_lib.producer.replay import open_sink, replay
from etl_lib.runtime.runner import run_job
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService
from tests.waiting import wait_until

if TYPE_CHECKING:
    from tests.integration.conftest import SuiteRun

# A fault scenario of the suite's recovery code, on the primary line; the other line's Kafka connector runs in
# test_speed_streams (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
EVENTS, MALFORMED = 6_000, 30


def version(table: Path) -> int:
    """The table's version as another engine sees it, -1 before its first commit."""
    try:
        return int(DeltaTable(str(table)).version())
    except Exception:  # noqa: BLE001 - no table yet, or its first commit not written yet
        return -1


def settings(source: str, stream: str, work_dir: str) -> dict[str, str]:
    """The run's settings on ``source`` (kafka or kinesis), reading ``stream`` (a topic or a Kinesis stream)."""
    common = {
        "services.work_dir": work_dir,
        "speed.source": source,
        "speed.trigger_interval": "1 second",
        # The killed run holds every batch's state row when it dies: the restart must take them from bronze.
        "speed.audit_interval": "1 hour",
    }
    if source == "kafka":
        return {**common, "speed.kafka.topic": stream, "speed.kafka.max_offsets_per_trigger": "2000"}
    # The suite's own Kinesis source on the local endpoint, two shards of at most 1,000 records a batch each.
    return {
        **common,
        "speed.kinesis.stream": stream,
        "speed.kinesis.shards": "2",
        "speed.kinesis.local_endpoint": "true",
        "speed.kinesis.max_records_per_shard": "1000",
    }


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_loses_and_repeats_nothing(
    spark: SparkSession,
    suite_config: SuiteConfig,
    kafka: KafkaService,
    tmp_path: Path,
    run_statuses: Callable[[SparkSession, str], list[list[str]]],
    suite_run: type[SuiteRun],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kill_mid_stream_then_restart(spark, suite_config, "kafka", tmp_path, run_statuses, suite_run, caplog)


@pytest.mark.slow
def test_sigkill_mid_stream_on_kinesis_then_restart_loses_and_repeats_nothing(
    spark: SparkSession,
    suite_config: SuiteConfig,
    aws: AwsService,
    tmp_path: Path,
    run_statuses: Callable[[SparkSession, str], list[list[str]]],
    suite_run: type[SuiteRun],
    caplog: pytest.LogCaptureFixture,
) -> None:
    kill_mid_stream_then_restart(spark, suite_config, "kinesis", tmp_path, run_statuses, suite_run, caplog)


def kill_mid_stream_then_restart(
    spark: SparkSession,
    suite_config: SuiteConfig,
    source: str,
    tmp_path: Path,
    run_statuses: Callable[[SparkSession, str], list[list[str]]],
    suite_run: type[SuiteRun],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Events (and malformed records) sent at 1,000 a second to ``source``; the running layer frozen after two
    micro-batches, a second copy refused, the first killed with SIGKILL, and a restart drains the rest: every record
    once, every malformed one a dead letter, the tables agree, and a run after that writes nothing."""
    stream = f"kill-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    root = tmp_path / "lake"
    work_dir = suite_config.services.work_dir
    overrides = settings(source, stream, work_dir)
    config = load_config(PROJECT / "conf" / "test.yaml", [f"lakehouse.root={root}", *_as_overrides(overrides)])
    open_sink(config, source)  # the topic or stream exists before the layer reads it
    sending = {"limit": EVENTS, "malformed": MALFORMED, "rate": 1000.0}
    producer = threading.Thread(target=replay, args=(config, source), kwargs=sending)
    producer.start()

    running = suite_run("speed_layer", root, overrides)
    bronze = root / "bronze" / "events"

    def two_batches_in() -> bool:  # more are coming
        assert running.running(), running.output[-5000:]
        return version(bronze) >= 1

    wait_until(two_batches_in, "second micro-batch in bronze", timeout=240, poll=0.5)
    # Frozen there (so that it is still mid-stream when killed), the first copy holds its lock: a second copy on
    # the same lakehouse and checkpoint is refused (checked on Kafka: the lock is the runner's, whatever the source).
    # The second copy runs here, in this process: that a refused run's process ends with exit code 75 and one line is
    # the batch layer's fault test (the same runner for every job).
    running.signal(signal.SIGSTOP)
    second = config.model_copy(update={"run": config.run.model_copy(update={"available_now": True})})
    if source == "kafka":
        with pytest.raises(RunLockedError) as refused:
            run_job("speed_layer", second, spark)
        assert str(refused.value).startswith("speed is already running: run "), refused.value
        assert f" of speed_layer (pid {running.pid} on " in str(refused.value)
    running.signal(signal.SIGKILL)
    running.finish(30)
    killed_at = version(bronze)
    producer.join(120)
    assert not producer.is_alive()

    # Restarted here, in this process: what it recovers from is on disk (the checkpoint, the tables, the lock), and
    # a process of its own would add only a second start of a JVM (the run killed is the one that must be a process).
    with caplog.at_level(logging.WARNING, logger="etl_lib.runtime.runner"):
        run_job("speed_layer", second, spark)
    assert "no longer runs; this run takes over" in caplog.text

    lake = suite_config.lakehouse.model_copy(update={"root": str(root)})
    path = lake.table_path
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), EVENTS))
    landed = lakehouse.read(spark, path("bronze", "events"))
    assert landed.count() == EVENTS + MALFORMED  # every record exactly once
    assert landed.select("_partition", "_offset").distinct().count() == EVENTS + MALFORMED
    partitions = {row["_partition"] for row in landed.select("_partition").distinct().collect()}
    assert len(partitions) == 2, partitions  # both partitions (or shards) of the stream were read
    assert lakehouse.read(spark, path("bronze", "events_deadletter")).count() == MALFORMED
    silver = lakehouse.read(spark, path("silver", "events"))
    assert silver.count() == silver.select("event_id").distinct().count() == len({e["event_id"] for e in produced})
    speed = config.speed
    assert_df_equality(
        lakehouse.read(spark, path("gold", "customer_sessions_5min")),
        silver.transform(events.session_windows(speed.window, speed.page_view_type, speed.purchase_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert_df_equality(
        lakehouse.read(spark, path("gold", "customer_value")),
        silver.transform(events.customer_value(speed.purchase_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    outbox = lakehouse.read(spark, path("gold", "fulfillment_requests"))
    assert outbox.count() == outbox.select("request_id").distinct().count()
    assert version(bronze) > killed_at  # the restart had work left to do
    # Each micro-batch's state row once, those of the killed run taken from its bronze commits.
    state = lakehouse.read(spark, path("audit", "stream_state"))
    batches = landed.select("_query_id", "_batch_id").distinct().count()
    assert state.count() == state.select("query_id", "batch_id").distinct().count() == batches
    assert state.agg(F.sum("records")).first()[0] == EVENTS + MALFORMED  # type: ignore[index]
    # And its silver rules' results once, held like the state rows and taken from bronze's commits the same way.
    results = lakehouse.read(spark, path("audit", "quality_results")).where("job = 'speed_layer'")
    assert results.select("run_id", "batch_id").distinct().count() == batches
    assert results.count() == batches * len(config.quality.tables["silver/events"].rules)

    # The killed run is closed as abandoned by the restart; the refused copy failed; the restart succeeded.
    refused_runs = [["failed", "running"]] if source == "kafka" else []
    assert run_statuses(spark, path("audit", "etl_runs")) == sorted(
        [["abandoned", "running"], *refused_runs, ["running", "succeeded"]]
    )
    # Nothing is left: another run from the same checkpoint writes nothing.
    again = run_job("speed_layer", second, spark)
    assert {w.rows_written for w in again.writes} == {0}
    if source == "kinesis":
        # Read through the suite's own streaming source, every shard's end checkpointed.
        ingest = lakehouse.read(spark, path("audit", "stream_progress")).where("query_name NOT LIKE '%views'")
        progress = ingest.first()
        assert progress is not None
        [read] = json.loads(progress["sources"])
        assert "PythonMicroBatchStream" in read["description"]
        assert sorted(json.loads(read["end"])) == ["shardId-000000000000", "shardId-000000000001"]


def _as_overrides(settings: dict[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in settings.items()]
