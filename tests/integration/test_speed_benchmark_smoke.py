"""Benchmarks that need real services run at tiny size and yield well-formed results (no time is asserted)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from benchmarks import speed_layer
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService

# Benchmarks are measured on the primary line; their smoke runs need not repeat on the other.
pytestmark = pytest.mark.primary_line


def test_speed_layer_benchmark_tiny(spark: SparkSession, kafka: KafkaService, aws: AwsService) -> None:
    result = speed_layer.run("tiny", repeat=1, spark=spark, warmup=0, broker=kafka, endpoint=aws)
    plan = speed_layer.SIZES["tiny"]
    names = list(speed_layer.SOURCES.values())
    assert [row["case"].split(":")[0] for row in result["rows"]] == [name for name in names for _ in range(3)]
    assert [goal["claim"].split(":")[0] for goal in result["targets"]] == [name for name in names for _ in range(5)]
    for index in range(len(names)):
        drain, live, single = result["rows"][3 * index : 3 * index + 3]
        # Throughput is the events drained over the run's time: both sides drained all 600 in a plausible time.
        assert plan["events"] / 2 / 600 < drain["suite_events_per_s_per_core"] < plan["events"] / 2 / 0.05
        assert plan["events"] / 2 / 600 < drain["passthrough_events_per_s_per_core"] < plan["events"] / 2 / 0.05
        # The ratio is of the two drain times, so it is the inverse ratio of the two throughputs, which are rounded
        # to whole events: each is off by half an event at most.
        suite, passthrough = drain["suite_events_per_s_per_core"], drain["passthrough_events_per_s_per_core"]
        rounding = passthrough / suite * (0.5 / (suite - 0.5) + 0.5 / (passthrough - 0.5)) + 0.005
        assert abs(drain["suite/passthrough_time"] - passthrough / suite) <= rounding
        sent = int(plan["rate"] * plan["seconds"])
        # Every event sent is measured once silver has it (the run waits for 95% before it stops).
        assert sent * 0.95 <= live["events_measured"] <= sent
        # An event is in silver after it was produced, and in gold after silver, within the run's length.
        assert 0 < live["silver_p50_s"] <= live["silver_p99_s"] < 120
        assert live["silver_p50_s"] <= live["gold_p50_s"] <= live["gold_p99_s"] < 120
        assert 0 <= live["backlog_events"] <= sent
        assert single["events_measured"] == plan["singles"]
        assert 0 < single["batch_median_s"] < 30
        drain_target, backlog, silver, gold, one = result["targets"][5 * index : 5 * index + 5]
        assert drain_target["target"] == "suite/passthrough time <= 2.0"
        assert drain_target["met"] == (drain_target["measured"] <= 2.0)
        assert drain_target["met"] or "micro-batches" in drain_target["cause"]  # a missed target says why
        # The backlog counts only if the producer held the rate (it says so otherwise).
        held = live["sent_events_per_s"] >= 0.95 * plan["rate"]
        assert held or backlog["cause"].startswith(f"the producer held {live['sent_events_per_s']:,} events/s")
        assert backlog["met"] == (held and backlog["measured"] < 2 * plan["rate"])
        assert silver["target"] == "p99 <= 5 s"
        assert silver["met"] == (silver["measured"] <= 5)
        assert silver["met"] or "an ingest micro-batch took" in silver["cause"]
        assert gold["target"] == "p99 <= 10 s"
        assert gold["met"] == (gold["measured"] <= 10)
        assert gold["met"] or "a views micro-batch took" in gold["cause"]
        assert one["met"] == (one["measured"] <= 1.0)
        assert one["met"] or "one-event batches" in one["cause"]
