"""The speed layer against the real broker and the local Kinesis endpoint: N valid + M malformed records."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse
from etl_lib.jobs import speed_layer
from etl_lib.layers import events
from etl_lib.producer.events import retail_events
from etl_lib.producer.replay import replay
from etl_lib.runtime.runner import run_job
from etl_lib.runtime.stack import active_line, load_stack
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService
from tests.checkpoints import forget_last_batch

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"
VALID, MALFORMED = 2500, 25


def configured(base: SuiteConfig, root: Path, **speed: Any) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["run"]["available_now"] = True
    for key, value in speed.items():
        if isinstance(value, dict):
            data["speed"][key].update(value)
        else:
            data["speed"][key] = value
    return validate_config(data)


def check_stream(spark: SparkSession, config: SuiteConfig, caplog: pytest.LogCaptureFixture) -> None:
    report = replay(config, config.speed.source, limit=VALID, malformed=MALFORMED, batch_size=400)
    assert (report.events, report.malformed) == (VALID, MALFORMED)
    context = RunContext.new(
        "speed_layer", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: "run-1"
    )
    written = {f"{w.layer}/{w.table}": w.rows_written for w in run_job("speed_layer", config, spark, context).writes}

    distinct = {e["event_id"] for e in itertools.islice(retail_events(pq.read_table(DATA)), VALID)}
    path = config.lakehouse.table_path
    bronze = lakehouse.read(spark, path("bronze", "events"))
    assert written["bronze/events"] == bronze.count() == VALID + MALFORMED
    assert bronze.select("_partition", "_offset").distinct().count() == VALID + MALFORMED  # coordinates are unique
    assert written["bronze/events_deadletter"] == MALFORMED
    silver = lakehouse.read(spark, path("silver", "events"))
    assert written["silver/events"] == silver.count() == len(distinct)
    speed = config.speed
    assert_df_equality(
        lakehouse.read(spark, path("gold", "customer_sessions_5min")),
        silver.transform(events.session_windows(speed.window, speed.page_view_type, speed.purchase_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    again = run_job("speed_layer", config, spark, RunContext.new("speed_layer", new_id=lambda: "run-2"))
    assert {w.rows_written for w in again.writes} == {0}

    # The checkpoint skipped what was read. A batch Spark runs again (a crash after its commits, before Spark noted
    # it done) is skipped by the tables' own commits instead: no row and no commit a second time.
    name = speed_layer.query_name(config)
    replayed = {query: forget_last_batch(config.lakehouse.query_checkpoint(query)) for query in (name, f"{name}_views")}
    versions = {table: lakehouse.current_version(spark, path(*table)) for table in speed_layer.TABLES}
    with caplog.at_level(logging.INFO, logger="etl_lib.jobs.speed_layer"):
        third = run_job("speed_layer", config, spark, RunContext.new("speed_layer", new_id=lambda: "run-3"))
    assert {w.rows_written for w in third.writes} == {0}
    assert {table: lakehouse.current_version(spark, path(*table)) for table in speed_layer.TABLES} == versions
    found = sorted(int(r.getMessage().split()[1]) for r in caplog.records if "is a replay" in r.getMessage())
    assert found == sorted(replayed.values())  # both queries ran their batch again, and every table held it


def test_kafka_stream(
    spark: SparkSession,
    suite_config: SuiteConfig,
    kafka: KafkaService,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # On the primary line integration/test_speed_kill.py drains a Kafka stream with the same checks (two partitions,
    # malformed records dead-lettered, the views equal to their recomputation, a second run that writes nothing),
    # killed mid-stream; here the other line's Kafka connector runs them.
    if active_line().name == load_stack().default_line:
        pytest.skip("the primary line drains Kafka in the kill-and-restart test")
    topic = f"events-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    config = configured(suite_config, tmp_path / "lake", source="kafka", kafka={"topic": topic, "partitions": 2})
    check_stream(spark, config, caplog)
    bronze = lakehouse.read(spark, config.lakehouse.table_path("bronze", "events"))
    assert {r["_partition"] for r in bronze.select("_partition").distinct().collect()} == {"0", "1"}


def test_kinesis_through_the_suites_own_source_needs_spark_4(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path
) -> None:
    # On Spark 4 the suite's Kinesis source is tested in integration/test_speed_kill.py: the same drain (malformed
    # records dead-lettered, several batches a shard, a second run that writes nothing), killed mid-stream.
    if int(spark.version.split(".")[0]) >= 4:
        pytest.skip("Spark 4: the Kinesis stream is tested through the kill-and-restart test")
    stream = f"events-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    config = configured(
        suite_config,
        tmp_path / "lake",
        source="kinesis",
        kinesis={"stream": stream, "shards": 2, "local_endpoint": True, "max_records_per_shard": 500},
    )
    # The Spark 3.5 line has no Python streaming sources: the suite says which sources it can use instead.
    with pytest.raises(ConfigError, match=r"Spark 4.*connector databricks .* or emr"):
        run_job("speed_layer", config, spark)


def test_bad_records_never_stop_the_stream(
    spark: SparkSession, suite_config: SuiteConfig, kafka: KafkaService, tmp_path: Path
) -> None:
    topic = f"bad-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    config = configured(suite_config, tmp_path / "lake", source="kafka", kafka={"topic": topic, "partitions": 1})
    replay(config, "kafka", limit=0, malformed=40)
    written = run_job("speed_layer", config, spark).writes
    counts = {f"{w.layer}/{w.table}": w.rows_written for w in written}
    assert (counts["bronze/events"], counts["bronze/events_deadletter"], counts["silver/events"]) == (40, 40, 0)
