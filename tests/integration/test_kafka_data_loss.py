"""Records deleted from a topic before the stream read them: a loud failure by default (Kafka's failOnDataLoss);
when loss is tolerated, the hole is recorded in ``audit/stream_gaps`` and the stream goes on."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import explain
from etl_lib.io import lakehouse
from etl_lib.producer.events import retail_events
from etl_lib.producer.sinks import KafkaSink
from etl_lib.runtime.runner import run_job
from etl_lib.services.kafka import KafkaService

# A test of the suite's own logic, on the primary line: the other line's Kafka connector runs in test_speed_streams
# (see the primary_line marker).
pytestmark = pytest.mark.primary_line

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


def configured(base: SuiteConfig, root: Path, topic: str, tolerate: bool) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["run"]["available_now"] = True
    data["speed"]["source"] = "kafka"
    data["speed"]["kafka"].update(topic=topic, partitions=1, fail_on_data_loss=not tolerate)
    return validate_config(data)


# The Kafka clients live in these helpers' frames, not in the test's: the test's frame is held by the traceback
# pytest.raises keeps, and clients held with it would go on reconnecting to the broker after it stops.
def produce(endpoint: str, topic: str, values: list[bytes]) -> None:
    """Send ``values`` to partition 0 of ``topic``, every one acknowledged."""
    sink = KafkaSink(endpoint, topic, partitions=1)
    for value in values:
        sink.producer.produce(topic, value=value, partition=0)
    assert sink.producer.flush(30) == 0


def delete_below(endpoint: str, topic: str, offset: int) -> int:
    """Delete the records of partition 0 below ``offset`` (what retention does); the new low watermark."""
    admin = AdminClient({"bootstrap.servers": endpoint})
    [deleted] = admin.delete_records([TopicPartition(topic, 0, offset)]).values()
    return int(deleted.result(30).low_watermark)


def test_records_lost_to_retention_fail_the_stream_or_are_recorded_as_a_gap(
    spark: SparkSession, suite_config: SuiteConfig, kafka: KafkaService, tmp_path: Path
) -> None:
    topic = f"loss-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    root = tmp_path / "lake"
    strict = configured(suite_config, root, topic, tolerate=False)
    events = [json.dumps(e).encode() for e in itertools.islice(retail_events(pq.read_table(DATA)), 100)]
    produce(kafka.endpoint, topic, events[:50])
    run_job("speed_layer", strict, spark, RunContext.new("speed_layer", new_id=lambda: "loss-1"))
    bronze = strict.lakehouse.table_path("bronze", "events")
    assert lakehouse.read(spark, bronze).count() == 50

    # 50 more arrive, and retention deletes offsets 50..79 before the stream runs again.
    produce(kafka.endpoint, topic, events[50:])
    assert delete_below(kafka.endpoint, topic, 80) == 80

    # Spark's Kafka source finds the hole while the micro-batch reads, and says so in one line.
    with pytest.raises(Exception, match="Some data may have been lost") as raised:
        run_job("speed_layer", strict, spark, RunContext.new("speed_layer", new_id=lambda: "loss-2"))
    # One line naming the hole: Spark 4's connector says data was lost, Spark 3.5's which offset it cannot fetch.
    explained = explain(raised.value)
    assert "\n" not in explained
    assert explained.startswith(
        (
            "org.apache.spark.sql.kafka010.KafkaIllegalStateException: Some data may have been lost",
            "java.lang.IllegalStateException: Cannot fetch offset 50 ",
        )
    ), explained
    assert "failOnDataLoss" in str(raised.value)  # and how to tolerate it
    assert lakehouse.read(spark, bronze).count() == 50  # nothing written by the failed run

    tolerant = configured(suite_config, root, topic, tolerate=True)
    run_job("speed_layer", tolerant, spark, RunContext.new("speed_layer", new_id=lambda: "loss-3"))
    assert sorted(int(r["_offset"]) for r in lakehouse.read(spark, bronze).select("_offset").collect()) == [
        *range(50),
        *range(80, 100),
    ]
    gaps = lakehouse.read(spark, tolerant.lakehouse.table_path("audit", "stream_gaps")).collect()
    assert [
        (
            g["stream"],
            g["partition"],
            g["first_missing_offset"],
            g["next_offset_read"],
            g["missing_records"],
            g["run_id"],
        )
        for g in gaps
    ] == [(topic, "0", 50, 80, 30, "loss-3")]
