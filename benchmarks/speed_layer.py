"""The speed layer on the real Kafka broker: sustained throughput and produce-to-silver latency.

Throughput: the same topic (the Online Retail replay) is drained with the same batch size by a bare
Kafka-to-Delta passthrough query (the baseline) and by the speed layer, in turns, each time into a new
lakehouse; the claim is events per second per core of each, and their ratio.

Latency: the speed layer runs with a 1-second trigger while a producer sends at a steady rate; an
event's latency is the time of the silver commit that made it visible less its Kafka timestamp
(stamped when it was produced), read back from the tables themselves.

Where a target is missed, the cause is measured in the same run: Spark's own progress reports of each
micro-batch (``audit/stream_progress``, and the passthrough query's ``recentProgress``) split the
suite's time into its micro-batches, its views query and the job's own start and end, and the tables'
Delta histories count the commits each micro-batch makes.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import in_turns, record, target

PROJECT = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": {"events": 600, "per_batch": 300, "rate": 100.0, "seconds": 4, "warmup": 8, "port": 29192},
    "full": {"events": 50_000, "per_batch": 25_000, "rate": 5_000.0, "seconds": 10, "warmup": 15, "port": 29092},
}  # the two sizes' brokers listen on ports of their own: the smoke test (tiny) can run beside `make bench`
OVERHEAD_TARGET = 1.25
P99_TARGET = 5.0

COLUMNS = [
    "suite_events_per_s_per_core",
    "passthrough_events_per_s_per_core",
    "suite/passthrough_time",
    "spread",
    "latency_p50_s",
    "latency_p99_s",
    "events_measured",
]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _seconds(durations: list[dict[str, int]], key: str) -> list[float]:
    return [d.get(key, 0) / 1000 for d in durations]


def _batches(spark: Any, config: Any, query: str) -> list[dict[str, Any]]:
    """The progress rows of ``query`` in ``config``'s lakehouse that read something, in batch order."""
    from etl_lib import lakehouse

    progress = lakehouse.read(spark, config.lakehouse.table_path("audit", "stream_progress"))
    rows = progress.where(progress.query_name == query).orderBy("batch_id").collect()
    return [{"rows": row["num_input_rows"], **dict(row["duration_ms"])} for row in rows if row["num_input_rows"]]


def _commits_per_batch(spark: Any, result: Any, batches: int) -> float:
    """Delta commits the run made to its tables, per micro-batch of its ingest query."""
    from etl_lib import lakehouse

    commits = sum(
        1
        for write in result.writes
        for commit in lakehouse.commits_since(spark, write.path, None)
        if commit.user_metadata.get("run_id") == result.run_id
    )
    return commits / batches if batches else 0.0


def run(
    size: str, repeat: int = 5, results_dir: Path | None = None, spark: Any = None, warmup: int = 1
) -> dict[str, Any]:
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
            f"services.kafka.port={plan['port']}",
            f"services.kafka.controller_port={plan['port'] + 1}",
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
    query = f"speed_layer_{config.speed.source}"
    suite_batches: list[dict[str, Any]] = []
    views_batches: list[dict[str, Any]] = []
    base_batches: list[dict[str, int]] = []
    commits_per_batch: list[float] = []
    try:
        started = time.perf_counter()
        produced = replay(config, "kafka", limit=plan["events"], batch_size=5_000)
        produce_seconds = time.perf_counter() - started

        def passthrough(attempt: int) -> float:
            """Every record of the topic into a Delta table, nothing else."""
            started = time.perf_counter()
            stream = (
                spark.readStream.format("kafka")
                .option("kafka.bootstrap.servers", config.services.kafka.bootstrap_servers)
                .option("subscribe", config.speed.kafka.topic)
                .option("startingOffsets", "earliest")
                .option("maxOffsetsPerTrigger", str(plan["per_batch"]))
                .load()
                .writeStream.format("delta")
                .option("checkpointLocation", str(work / f"baseline-{attempt + warmup}" / "_checkpoint"))
                .trigger(availableNow=True)
                .start(str(work / f"baseline-{attempt + warmup}" / "table"))
            )
            stream.awaitTermination()
            seconds = time.perf_counter() - started
            if attempt >= 0:
                base_batches.extend(p["durationMs"] for p in stream.recentProgress if p["numInputRows"])
            return seconds

        def suite(attempt: int) -> float:
            lake = config.lakehouse.model_copy(update={"root": str(work / f"lake-{attempt + warmup}")})
            setup = config.model_copy(update={"lakehouse": lake})
            started = time.perf_counter()
            result = run_job("speed_layer", setup, spark)
            seconds = time.perf_counter() - started
            landed = {f"{w.layer}/{w.table}": w.rows_written for w in result.writes}
            if landed["bronze/events"] != produced.events:
                raise AssertionError(f"bronze got {landed['bronze/events']} of {produced.events} events")
            if attempt >= 0:
                batches = _batches(spark, setup, query)
                suite_batches.extend(batches)
                views_batches.extend(_batches(spark, setup, f"{query}_views"))
                commits_per_batch.append(_commits_per_batch(spark, result, len(batches)))
            return seconds

        timings = in_turns({"passthrough": passthrough, "suite": suite}, repeat, warmup)

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
        live_batches = _batches(spark, live, query)
    finally:
        if own_session:
            spark.stop()
        kafka.down()
        shutil.rmtree(work, ignore_errors=True)

    suite_seconds, baseline_seconds = timings["suite"]["median"], timings["passthrough"]["median"]
    ratio = suite_seconds / baseline_seconds
    p50 = round(_percentile(latencies, 0.5), 2) if latencies else float("nan")
    p99 = round(_percentile(latencies, 0.99), 2) if latencies else float("nan")

    # Where the suite's drain time goes, per run: its micro-batches, the views query, and the rest (the
    # job's run record, lock and lineage, the queries' start and stop).
    runs_counted = max(len(timings["suite"]["runs"]), 1)
    batch_time = sum(_seconds(suite_batches, "triggerExecution")) / runs_counted
    views_time = sum(_seconds(views_batches, "triggerExecution")) / runs_counted
    rest = suite_seconds - batch_time - views_time
    per_batch = statistics.median(_seconds(suite_batches, "addBatch")) if suite_batches else 0.0
    base_per_batch = statistics.median(_seconds(base_batches, "addBatch")) if base_batches else 0.0
    commits = statistics.median(commits_per_batch) if commits_per_batch else 0.0
    overhead_cause = (
        f"per run of {suite_seconds:.1f} s: its {len(suite_batches) // runs_counted} micro-batches "
        f"{batch_time:.1f} s, the views query {views_time:.1f} s, the rest (run record, lock, lineage, queries' "
        f"start and stop) {rest:.1f} s; a micro-batch's own work (addBatch) took {per_batch:.2f} s against "
        f"{base_per_batch:.2f} s for the passthrough's one append: it makes {commits:.1f} Delta commits "
        "(bronze, silver, stream state and progress, quality results, views), checks the batch's event ids "
        "against silver and runs the quality pass"
    )
    live_seconds = _seconds(live_batches, "triggerExecution")
    live_rows = [b["rows"] for b in live_batches]
    latency_cause = ""
    if live_seconds:
        took, held = statistics.median(live_seconds), statistics.median(live_rows)
        latency_cause = (
            f"a micro-batch took {took:.2f} s (median of {len(live_seconds)}) for {held:,.0f} events, "
            f"{held / took:,.0f} events/s against {plan['rate']:,.0f} sent per second"
            + (": the backlog grew while the producer sent, and an event waited for the batches ahead of it"
               if held / took < plan["rate"] else "")
        )  # fmt: skip
    rows_out = [
        {
            "case": f"drain {produced.events:,} events, {plan['per_batch']:,} per batch",
            "suite_events_per_s_per_core": round(produced.events / suite_seconds / cores),
            "passthrough_events_per_s_per_core": round(produced.events / baseline_seconds / cores),
            "suite/passthrough_time": round(ratio, 2),
            "spread": f"suite {timings['suite']['spread']}, passthrough {timings['passthrough']['spread']}",
        },
        {
            "case": f"{plan['rate']:,.0f} events/s for {plan['seconds']}s, 1 s trigger",
            "latency_p50_s": p50,
            "latency_p99_s": p99,
            "events_measured": len(latencies),
        },
    ]
    overhead_met = ratio <= OVERHEAD_TARGET
    latency_met = bool(latencies) and p99 < P99_TARGET
    result_data = {
        "summary": (
            f"producer sent {produced.events:,} events in {produce_seconds:.1f}s; drains: median of {repeat} "
            f"after {warmup} warm-up, the two in turns, each into a new lakehouse; throughput counts the whole "
            f"job (query start to tables written); latency (one run of {plan['seconds']} s, every event "
            "measured) is silver commit time less Kafka timestamp"
        ),
        "columns": COLUMNS,
        "rows": [{column: row.get(column, "") for column in ["case", *COLUMNS]} for row in rows_out],
        "runs": timings,
        "targets": [
            target(
                "the suite's overhead over a bare Kafka-to-Delta passthrough",
                f"suite/passthrough time <= {OVERHEAD_TARGET}",
                ratio,
                overhead_met,
                "" if overhead_met else overhead_cause,
            ),
            target(
                f"produce-to-silver p99 at {plan['rate']:,.0f} events/s, 1 s trigger",
                f"p99 < {P99_TARGET:.0f} s",
                p99,
                latency_met,
                "" if latency_met else latency_cause,
            ),
        ],
    }
    if results_dir is not None:
        record("speed_layer", f"python -m benchmarks speed_layer --size {size}", result_data, results_dir)
    return result_data
