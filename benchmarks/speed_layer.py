"""The speed layer on the real Kafka broker: sustained throughput and produce-to-silver latency.

Throughput: the same topic (the Online Retail replay) is drained twice with the same batch size, once
by a bare Kafka-to-Delta passthrough query (the baseline) and once by the speed layer; the claim is
events per second per core of each, and their ratio.

Latency: the speed layer runs with a 1-second trigger while a producer sends at a steady rate; an
event's latency is the time of the silver commit that made it visible less its Kafka timestamp
(stamped when it was produced), read back from the tables themselves.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import record

PROJECT = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": {"events": 600, "per_batch": 300, "rate": 100.0, "seconds": 4, "warmup": 8},
    "full": {"events": 200_000, "per_batch": 50_000, "rate": 1_000.0, "seconds": 60, "warmup": 15},
}


COLUMNS = [
    "suite_events_per_s_per_core",
    "passthrough_events_per_s_per_core",
    "suite/passthrough_time",
    "latency_p50_s",
    "latency_p99_s",
    "events_measured",
]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(size: str, repeat: int = 1, results_dir: Path | None = None, spark: Any = None) -> dict[str, Any]:
    """Measure ``size`` (tiny|full); ``spark`` reuses a session (it is then left running)."""
    from pyspark.sql import functions as F

    from etl_lib import lakehouse
    from etl_lib.config import load_config
    from etl_lib.platform.runner import run_job
    from etl_lib.platform.runtime import RunContext
    from etl_lib.platform.session import build_session
    from etl_lib.producer.replay import replay
    from etl_lib.services.kafka import KafkaService

    plan = SIZES[size]
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S%f")
    config = load_config(
        PROJECT / "conf" / "test.yaml",
        [
            f"lakehouse.root={work}/lake",
            f"services.work_dir={work}/services",
            "services.kafka.port=29092",
            "services.kafka.controller_port=29093",
            "spark.log_level=ERROR",
            "speed.source=kafka",
            f"speed.kafka.topic=bench-{stamp}",
            f"speed.kafka.max_offsets_per_trigger={plan['per_batch']}",
            "run.available_now=true",
        ],
    )
    kafka = KafkaService(config.services)
    kafka.up()
    own_session = spark is None
    spark = spark or build_session(config.spark)
    cores = os.cpu_count() or 1
    try:
        started = time.perf_counter()
        produced = replay(config, "kafka", limit=plan["events"], batch_size=5_000)
        produce_seconds = time.perf_counter() - started

        # Baseline: every record of the topic into a Delta table, nothing else.
        started = time.perf_counter()
        (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", config.services.kafka.bootstrap_servers)
            .option("subscribe", config.speed.kafka.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(plan["per_batch"]))
            .load()
            .writeStream.format("delta")
            .option("checkpointLocation", str(work / "baseline-checkpoint"))
            .trigger(availableNow=True)
            .start(str(work / "baseline"))
            .awaitTermination()
        )
        baseline_seconds = time.perf_counter() - started

        started = time.perf_counter()
        result = run_job("speed_layer", config, spark)
        suite_seconds = time.perf_counter() - started
        landed = {f"{w.layer}/{w.table}": w.rows_written for w in result.writes}
        if landed["bronze/events"] != produced.events:
            raise AssertionError(f"bronze got {landed['bronze/events']} of {produced.events} events")

        # Latency: a steady producer against the running layer with a 1-second trigger.
        live = config.model_copy(
            update={
                "run": config.run.model_copy(update={"available_now": False}),
                "speed": config.speed.model_copy(
                    update={
                        "trigger_interval": "1 second",
                        "kafka": config.speed.kafka.model_copy(update={"topic": f"live-{stamp}"}),
                    }
                ),
                "lakehouse": config.lakehouse.model_copy(update={"root": str(work / "live")}),
            }
        )
        events = int(plan["rate"] * plan["seconds"])
        context = RunContext.new("speed_layer")
        layer = threading.Thread(target=run_job, args=("speed_layer", live, spark, context), daemon=True)
        replay(live, "kafka", limit=1)  # the topic exists before the query subscribes
        layer.start()
        time.sleep(plan["warmup"])  # the queries are running and idle
        replay(live, "kafka", limit=events, rate=plan["rate"], batch_size=max(1, int(plan["rate"] // 10)))
        silver_path = live.lakehouse.table_path("silver", "events")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and lakehouse.read(spark, silver_path).count() < events * 0.95:
            time.sleep(1)
        time.sleep(5)
        context.stop.set()
        layer.join(300)
        commits = {
            int(c.user_metadata["batch_id"]): c
            for c in lakehouse.commits_since(spark, silver_path, None)
            if "batch_id" in c.user_metadata
        }
        history = {
            int(row["version"]): row["timestamp"]
            for row in spark.sql(f"DESCRIBE HISTORY delta.`{silver_path}`").select("version", "timestamp").collect()
        }
        visible = {batch: history[c.version] for batch, c in commits.items()}
        rows = lakehouse.read(spark, silver_path).select("_batch_id", F.col("_arrived_at")).collect()
        latencies = [
            (visible[row["_batch_id"]] - row["_arrived_at"]).total_seconds()
            for row in rows
            if row["_batch_id"] in visible
        ]
    finally:
        if own_session:
            spark.stop()
        kafka.down()
        shutil.rmtree(work, ignore_errors=True)

    suite_rate = produced.events / suite_seconds
    baseline_rate = produced.events / baseline_seconds
    rows_out = [
        {
            "case": f"drain {produced.events:,} events, {plan['per_batch']:,} per batch",
            "suite_events_per_s_per_core": round(suite_rate / cores),
            "passthrough_events_per_s_per_core": round(baseline_rate / cores),
            "suite/passthrough_time": round(suite_seconds / baseline_seconds, 2),
        },
        {
            "case": f"{plan['rate']:,.0f} events/s for {plan['seconds']}s, 1 s trigger",
            "latency_p50_s": round(_percentile(latencies, 0.5), 2) if latencies else None,
            "latency_p99_s": round(_percentile(latencies, 0.99), 2) if latencies else None,
            "events_measured": len(latencies),
        },
    ]
    result_data = {
        "summary": (
            f"producer sent {produced.events:,} events in {produce_seconds:.1f}s; throughput counts the whole "
            f"job (query start to tables written); latency is silver commit time less Kafka timestamp"
        ),
        "columns": COLUMNS,
        "rows": [{column: row.get(column, "") for column in ["case", *COLUMNS]} for row in rows_out],
    }
    if results_dir is not None:
        record("speed_layer", f"python -m benchmarks speed_layer --size {size}", result_data, results_dir)
    return result_data
