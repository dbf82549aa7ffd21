"""Benchmarks that need real services run at tiny size and yield well-formed results (no time is asserted)."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from benchmarks import speed_layer

# Benchmarks are measured on the primary line; their smoke runs need not repeat on the other.
pytestmark = pytest.mark.primary_line


def test_speed_layer_benchmark_tiny(spark: SparkSession) -> None:
    result = speed_layer.run("tiny", repeat=1, spark=spark)
    drain, live = result["rows"]
    assert drain["suite_events_per_s_per_core"] > 0
    assert drain["passthrough_events_per_s_per_core"] > 0
    assert live["events_measured"] >= 380  # 400 sent; those not yet in silver when measured are left out
    assert 0 < live["latency_p50_s"] <= live["latency_p99_s"]
    overhead, latency = result["targets"]
    assert overhead["target"] == "suite/passthrough time <= 1.25"
    assert overhead["met"] == (overhead["measured"] <= 1.25)
    assert overhead["met"] or "micro-batches" in overhead["cause"]  # a missed target says why
    assert latency["target"] == "p99 < 5 s"
    assert latency["met"] == (latency["measured"] < 5)
    assert latency["met"] or "a micro-batch took" in latency["cause"]
