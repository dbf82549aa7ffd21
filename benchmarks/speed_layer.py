"""The speed layer on the real Kafka broker and on Kinesis: drain throughput, latency at a steady rate, single events.

Each case runs on Kafka (Spark's connector, the local broker) and on Kinesis (the suite's own streaming source,
the local AWS endpoint), one source after the other; each source's ratio is against a passthrough of its own
reader.

Drain: the same stream (the Online Retail replay) is drained with the same batch size by a bare passthrough
query (the baseline: every record into a Delta table, nothing else) and by the speed layer, in turns, each time
into a new lakehouse; the claim is the ratio of their times (whole jobs: query start to tables written).

Steady rate: the speed layer runs with a 1-second trigger while a producer sends at a steady rate. An
event's produce-to-silver latency is the time of the silver commit that made it visible less its arrival time
in the stream (Kafka's timestamp, Kinesis' approximate arrival time: both stamped as it was produced); its
produce-to-gold latency is the time of the last commit of the views batch that read that silver commit. The
backlog is the events produced but not yet in bronze when the producer stops. All of it is read back from the
tables themselves (their Delta histories and ``audit/stream_progress``).

Single events: one event at a time, each once the one before is in silver; the claim is the median time
of a micro-batch holding one event (Spark's own ``triggerExecution`` of the ingest query).

Where a target is missed, the cause is measured in the same run: Spark's progress reports of each
micro-batch split the time into its phases, and the Delta histories count the commits per micro-batch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness import in_turns, record, target

PROJECT = Path(__file__).resolve().parents[1]
SIZES = {
    "tiny": {
        "events": 600,
        "per_batch": 600,
        "rate": 100.0,
        "seconds": 2,
        "singles": 1,
        "port": 29192,
        "aws_port": 29566,
    },
    "full": {
        "events": 50_000,
        "per_batch": 25_000,
        "rate": 5_000.0,
        "seconds": 60,
        "singles": 15,
        "port": 29092,
        "aws_port": 29466,
    },
}  # each size's broker and endpoint have ports of their own: the smoke test can run beside `make bench`
DRAIN_TARGET = 2.0
SILVER_P99_TARGET = 5.0
#: The steady-rate case counts as offered the rate when the producer sent at 95% of it or more.
RATE_HELD = 0.95
GOLD_P99_TARGET = 10.0
SINGLE_TARGET = 1.0
#: The backlog when the producer stops must be under this many triggers' worth of events.
BACKLOG_TRIGGERS = 2

COLUMNS = [
    "suite_events_per_s_per_core",
    "passthrough_events_per_s_per_core",
    "suite/passthrough_time",
    "spread",
    "sent_events_per_s",
    "silver_p50_s",
    "silver_p99_s",
    "gold_p50_s",
    "gold_p99_s",
    "backlog_events",
    "batch_median_s",
    "events_measured",
]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _seconds(durations: list[dict[str, int]], key: str) -> list[float]:
    return [d.get(key, 0) / 1000 for d in durations]


def _progress(spark: Any, config: Any, query: str) -> list[dict[str, Any]]:
    """The progress rows of ``query`` in ``config``'s lakehouse that read something, in batch order."""
    from etl_lib.io import lakehouse

    progress = lakehouse.read(spark, config.lakehouse.table_path("audit", "stream_progress"))
    rows = progress.where(progress.query_name == query).orderBy("batch_id").collect()
    return [
        {
            "batch_id": row["batch_id"],
            "rows": row["num_input_rows"],
            "sources": row["sources"],
            "at": row["timestamp"],
            **dict(row["duration_ms"]),
        }
        for row in rows
        if row["num_input_rows"]
    ]


def _batches(spark: Any, config: Any, query: str, after: int = -1) -> list[dict[str, Any]]:
    """Spark's phase durations (ms), rows and start (``at``) of each micro-batch of ``query`` after ``after`` that
    read something."""
    return [
        {key: value for key, value in row.items() if key not in ("batch_id", "sources")}
        for row in _progress(spark, config, query)
        if row["batch_id"] > after
    ]


def _commits_per_batch(spark: Any, result: Any, batches: int) -> float:
    """Delta commits the run made to its tables, per micro-batch of its ingest query."""
    from etl_lib.io import lakehouse

    commits = sum(
        1
        for write in result.writes
        for commit in lakehouse.commits_since(spark, write.path, None)
        if commit.user_metadata.get("run_id") == result.run_id
    )
    return commits / batches if batches else 0.0


def _span(batch: dict[str, Any]) -> tuple[float, float]:
    """When a micro-batch ran: its start (Spark's progress timestamp) and end, in seconds."""
    start = dt.datetime.fromisoformat(str(batch["at"]).replace("Z", "+00:00")).timestamp()
    return start, start + batch.get("triggerExecution", 0) / 1000


def _beside(batches: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The micro-batches of ``batches`` that ran while one of ``others`` (another query's) was running."""
    spans = [_span(other) for other in others]

    def crowded(batch: dict[str, Any]) -> bool:
        start, end = _span(batch)
        return any(start < other_end and other_start < end for other_start, other_end in spans)

    return [batch for batch in batches if crowded(batch)]


def _phases(batches: list[dict[str, Any]]) -> str:
    """The median of each phase Spark reports for these micro-batches, longest first."""
    keys = sorted({key for batch in batches for key in batch if key not in ("rows", "at")})
    medians = {key: statistics.median(_seconds(batches, key)) for key in keys}
    return ", ".join(f"{key} {value:.2f} s" for key, value in sorted(medians.items(), key=lambda kv: -kv[1]) if value)


def _batch_times(spark: Any, path: str, query_id: str | None = None) -> dict[int, Any]:
    """When each micro-batch's last commit to the table at ``path`` was made, by batch id."""
    from etl_lib.io import lakehouse

    times: dict[int, Any] = {}
    for commit in lakehouse.commits_since(spark, path, None):
        meta = commit.user_metadata
        if "batch_id" in meta and (query_id is None or meta.get("query_id") == query_id):
            batch = int(meta["batch_id"])
            times[batch] = max(times.get(batch, commit.timestamp), commit.timestamp)
    return times


def _silver_versions(spark: Any, path: str) -> dict[int, int]:
    """The silver version each ingest micro-batch committed, by batch id."""
    from etl_lib.io import lakehouse

    return {
        int(c.user_metadata["batch_id"]): c.version
        for c in lakehouse.commits_since(spark, path, None)
        if "batch_id" in c.user_metadata
    }


def _latencies(spark: Any, live: Any, query: str, sent_until: dt.datetime) -> dict[str, Any]:
    """Produce-to-silver and produce-to-gold latency of every event, and the backlog when the producer stopped."""
    from pyspark.sql import functions as F

    from etl_lib.io import lakehouse

    path = live.lakehouse.table_path
    silver_at = _batch_times(spark, path("silver", "events"))
    bronze_at = _batch_times(spark, path("bronze", "events"))
    versions = _silver_versions(spark, path("silver", "events"))
    # The views batch that first read each silver version, and when its last gold commit was made.
    views = _progress(spark, live, f"{query}_views")
    gold_at: dict[int, Any] = {}
    for table in ("customer_sessions_5min", "customer_sessions", "customer_value", "fulfillment_requests"):
        for batch, at in _batch_times(spark, path("gold", table)).items():
            gold_at[batch] = max(gold_at.get(batch, at), at)
    read_by: list[tuple[int, int]] = []  # (last silver version read, views batch)
    for row in views:
        for source in json.loads(row["sources"]):
            end = json.loads(source["end"]) if isinstance(source["end"], str) else source["end"]
            read_by.append((_last_version_read(end), row["batch_id"]))
    read_by.sort()

    def gold_time(version: int) -> Any:
        for last_read, batch in read_by:
            if last_read >= version and batch in gold_at:
                return gold_at[batch]
        return None

    gold_of_batch = {batch: gold_time(version) for batch, version in versions.items()}
    silver_rows = lakehouse.read(spark, path("silver", "events")).select("_batch_id", "_arrived_at").collect()
    to_silver = [
        (silver_at[row["_batch_id"]] - row["_arrived_at"]).total_seconds()
        for row in silver_rows
        if row["_batch_id"] in silver_at
    ]
    to_gold = [
        (gold_of_batch[row["_batch_id"]] - row["_arrived_at"]).total_seconds()
        for row in silver_rows
        if gold_of_batch.get(row["_batch_id"]) is not None
    ]
    # Delta's commit timestamps and Kafka's are this machine's clock, without a zone.
    until = sent_until.replace(tzinfo=None)
    bronze_rows = (
        lakehouse.read(spark, path("bronze", "events")).groupBy("_batch_id").agg(F.count(F.lit(1)).alias("n")).collect()
    )
    backlog = sum(int(row["n"]) for row in bronze_rows if bronze_at.get(row["_batch_id"], until) > until)
    return {"silver": to_silver, "gold": to_gold, "backlog": backlog}


def _record(event: dict[str, Any]) -> tuple[str, bytes]:
    """One event as the producer sends it (keyed by customer)."""
    from etl_lib.producer.events import encode

    return (str(event["customer_id"]), encode(event))


def _running(spark: Any, live: Any) -> tuple[Any, threading.Thread]:
    """The speed layer started in a thread on ``live``; its context stops it."""
    from etl_lib.core.run import RunContext
    from etl_lib.runtime.runner import run_job

    context = RunContext.new("speed_layer")
    layer = threading.Thread(target=run_job, args=("speed_layer", live, spark, context), daemon=True)
    layer.start()
    return context, layer


def _last_version_read(end: dict[str, Any]) -> int:
    """The last table version a Delta source's end offset has read whole (index -1: none of its version yet)."""
    return int(end["reservoirVersion"]) - (0 if int(end.get("index", -1)) >= 0 else 1)


def _poll(condition: Callable[[], bool], seconds: float) -> None:
    """Poll ``condition`` every half second until it holds, for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not condition():
        time.sleep(0.5)


def _wait_for_rows(path: str, rows: int, seconds: float) -> None:
    """Wait (at most ``seconds``) until the Delta table at ``path`` holds ``rows`` rows.

    The rows are counted from the log's file statistics by the ``deltalake`` package, not by Spark: polled twice a
    second in the session under measurement, a Spark count ran two queries each time (both reading the table's
    snapshot) that took about a second in all, beside the layer being measured.
    """
    from deltalake import DeltaTable

    _poll(lambda: DeltaTable.is_deltatable(path) and DeltaTable(path).count() >= rows, seconds)


def _wait_for_views(spark: Any, name: str, silver: str, seconds: float) -> None:
    """Wait (at most ``seconds``) until the running views query ``name`` has read silver's newest version."""
    from etl_lib.io import lakehouse

    newest = lakehouse.current_version(spark, silver)

    def read_newest() -> bool:
        queries = [q for q in spark.streams.active if q.name == name]
        progress = queries[0].lastProgress if queries else None
        # A dict on Spark 3.5; on Spark 4 an object whose JSON has the offsets as objects.
        progress = json.loads(progress.json) if hasattr(progress, "json") else progress
        return (
            bool(progress and progress["sources"]) and _last_version_read(progress["sources"][0]["endOffset"]) >= newest
        )

    _poll(read_newest, seconds)


#: The sources measured, each against a bare passthrough of its own reader: Kafka through Spark's connector, and
#: Kinesis through the suite's own streaming source (the local AWS endpoint), which is what runs without a platform.
SOURCES = {"kafka": "Kafka", "kinesis": "Kinesis"}


def _renamed(config: Any, name: str) -> Any:
    """``config`` reading the topic or stream ``name`` of its source."""
    speed = config.speed
    section = "kafka" if speed.source == "kafka" else "kinesis"
    key = "topic" if section == "kafka" else "stream"
    return config.model_copy(
        update={"speed": speed.model_copy(update={section: getattr(speed, section).model_copy(update={key: name})})}
    )


def _live_config(config: Any, work: Path, name: str, stream: str) -> Any:
    """``config`` for a long-running layer with a 1-second trigger on ``stream``, in a lakehouse of its own."""
    config = _renamed(config, stream)
    return config.model_copy(
        update={
            "run": config.run.model_copy(update={"available_now": False}),
            "speed": config.speed.model_copy(update={"trigger_interval": "1 second"}),
            "lakehouse": config.lakehouse.model_copy(update={"root": str(work / name)}),
        }
    )


def _source_settings(source: str, plan: dict[str, Any], stamp: str) -> list[str]:
    """The overrides reading ``source``, ``plan["per_batch"]`` records a micro-batch."""
    if source == "kafka":
        return [
            "speed.source=kafka",
            f"speed.kafka.topic=bench-{stamp}",
            f"speed.kafka.max_offsets_per_trigger={plan['per_batch']}",
        ]
    return [
        "speed.source=kinesis",
        f"speed.kinesis.stream=bench-{stamp}",
        "speed.kinesis.shards=2",
        "speed.kinesis.local_endpoint=true",
        f"speed.kinesis.max_records_per_shard={plan['per_batch'] // 2}",
    ]


def _passthrough_stream(spark: Any, config: Any, per_batch: int) -> Any:
    """The raw records of the configured stream, read as the bare passthrough reads them."""
    if config.speed.source == "kafka":
        return (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", config.services.kafka.bootstrap_servers)
            .option("subscribe", config.speed.kafka.topic)
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", str(per_batch))
            # The consumer setting the layer reads with (speed.kafka.fetch_max_wait_ms): the ratio is of the suite's
            # work, not of the broker's wait.
            .option("kafka.fetch.max.wait.ms", str(config.speed.kafka.fetch_max_wait_ms))
            .load()
        )
    # No Kinesis source ships with Spark: the passthrough reads through the suite's own, as the layer does.
    from etl_lib.io.sources.events import read_event_stream

    return read_event_stream(spark, config.speed, config.services)


def run(
    size: str,
    repeat: int = 5,
    results_dir: Path | None = None,
    spark: Any = None,
    warmup: int = 1,
    broker: Any = None,
    endpoint: Any = None,
) -> dict[str, Any]:
    """Measure ``size`` (tiny|full) on Kafka and on Kinesis; ``spark`` reuses a session, ``broker`` a running Kafka
    service and ``endpoint`` a running AWS endpoint (all are then left running); by default the benchmark starts
    its own broker and endpoint on the size's ports."""
    from etl_lib.config import load_config
    from etl_lib.runtime.session import build_session
    from etl_lib.services.aws import AwsService
    from etl_lib.services.kafka import KafkaService

    plan = SIZES[size]
    work = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S%f")
    port, controller_port = (
        (broker.kafka.port, broker.kafka.controller_port) if broker else (plan["port"], plan["port"] + 1)
    )
    aws_port = endpoint.aws.port if endpoint else plan["aws_port"]
    common = [
        f"services.work_dir={work}/services",
        f"services.kafka.port={port}",
        f"services.kafka.controller_port={controller_port}",
        f"services.aws.port={aws_port}",
        "spark.log_level=ERROR",
        "run.available_now=true",
    ]
    configs = {
        source: load_config(
            PROJECT / "conf" / "test.yaml",
            [f"lakehouse.root={work}/{source}/lake", *common, *_source_settings(source, plan, stamp)],
        )
        for source in SOURCES
    }
    services = configs["kafka"].services
    started = [
        service
        for service, given in ((KafkaService(services), broker), (AwsService(services), endpoint))
        if given is None
    ]
    for service in started:
        service.up()
    own_session = spark is None
    spark = spark or build_session(configs["kafka"].spark)
    measured: dict[str, dict[str, Any]] = {}
    try:
        for source, config in configs.items():
            measured[source] = _measure(spark, config, plan, work / source, repeat, warmup)
    finally:
        if own_session:
            spark.stop()
        for service in started:
            service.down()
        shutil.rmtree(work, ignore_errors=True)

    sent = measured.items()
    result_data = {
        "summary": (
            "Kafka through Spark's connector and Kinesis through the suite's own source on the local AWS endpoint, "
            "one after the other, each against a bare passthrough of its own reader; producer sent "
            + ", ".join(f"{SOURCES[s]} {m['produced']:,} events in {m['produce_seconds']:.1f}s" for s, m in sent)
            + f"; drains: median of {repeat} after {warmup} warm-up, the two in turns, each into a new lakehouse; "
            "throughput counts the whole job (query start to tables written); steady rate: one run of "
            f"{plan['seconds']} s, every event measured (silver: the silver commit's time less the record's arrival "
            "time in the stream; gold: the last gold commit of the views batch that read it); backlog: events not in "
            "bronze when the producer stopped"
        ),
        "columns": COLUMNS,
        "rows": [
            {column: row.get(column, "") for column in ["case", *COLUMNS]}
            for source in measured
            for row in measured[source]["rows"]
        ],
        "runs": {source: measured[source]["runs"] for source in measured},
        "targets": [goal for source in measured for goal in measured[source]["targets"]],
    }
    if results_dir is not None:
        record("speed_layer", f"python -m benchmarks speed_layer --size {size}", result_data, results_dir)
    return result_data


def _measure(spark: Any, config: Any, plan: dict[str, Any], work: Path, repeat: int, warmup: int) -> dict[str, Any]:
    """The three cases on ``config``'s source: its rows, targets and drain timings."""
    import pyarrow.parquet as pq

    from etl_lib.producer.events import retail_events
    from etl_lib.producer.replay import DATA, open_sink, replay
    from etl_lib.runtime.runner import run_job

    source = config.speed.source
    name = SOURCES[source]
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S%f")
    cores = os.cpu_count() or 1
    query = f"speed_layer_{source}"
    suite_batches: list[dict[str, Any]] = []
    views_batches: list[dict[str, Any]] = []
    base_batches: list[dict[str, int]] = []
    commits_per_batch: list[float] = []
    started = time.perf_counter()
    produced = replay(config, source, limit=plan["events"], batch_size=5_000)
    produce_seconds = time.perf_counter() - started

    def passthrough(attempt: int) -> float:
        """Every record of the stream into a Delta table, nothing else."""
        started = time.perf_counter()
        while True:
            stream = (
                _passthrough_stream(spark, config, plan["per_batch"])
                .writeStream.format("delta")
                .option("checkpointLocation", str(work / f"baseline-{attempt + warmup}" / "_checkpoint"))
                .trigger(availableNow=True)
                .start(str(work / f"baseline-{attempt + warmup}" / "table"))
            )
            stream.awaitTermination()
            read = [p for p in stream.recentProgress if p["numInputRows"]]
            if attempt >= 0:
                base_batches.extend(p["durationMs"] for p in read)
            # An available-now query of the suite's Kinesis source stops after one batch, as the speed layer's
            # does: run again from the checkpoint, as the layer does, until nothing is left.
            if source == "kafka" or not read:
                break
        return time.perf_counter() - started

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

    # A steady producer against the running layer with a 1-second trigger.
    live = _live_config(config, work, "live", f"live-{stamp}")
    events = int(plan["rate"] * plan["seconds"])
    replay(live, source, limit=1)  # the stream exists before the query reads it
    context, layer = _running(spark, live)
    # Warmed up: the first batch, with the query's own start, took the event sent before it.
    _wait_for_rows(live.lakehouse.table_path("silver", "events"), 1, 120)
    sending = replay(live, source, limit=events, rate=plan["rate"], batch_size=max(1, int(plan["rate"] // 10)))
    sent_until = dt.datetime.now()
    # The producer paces itself to the rate, but a sink slower than that holds it back: the rate held is reported.
    held_rate = sending.events / sending.seconds if sending.seconds else float("inf")
    _wait_for_rows(live.lakehouse.table_path("silver", "events"), int(events * 0.95), 300)
    _wait_for_views(spark, f"{query}_views", live.lakehouse.table_path("silver", "events"), 120)
    context.stop.set()
    layer.join(300)
    measured = _latencies(spark, live, query, sent_until)
    live_batches = _batches(spark, live, query)
    live_views = _batches(spark, live, f"{query}_views")

    # Single events: each sent once the one before is in silver.
    single = _live_config(config, work, "single", f"single-{stamp}")
    sink = open_sink(single, source)
    ones = retail_events(pq.read_table(DATA))
    silver_path = single.lakehouse.table_path("silver", "events")
    sink.send([_record(next(ones))])  # the stream exists before the query reads it
    context, layer = _running(spark, single)
    _wait_for_rows(silver_path, 1, 120)
    for sent in range(2, plan["singles"] + 2):
        sink.send([_record(next(ones))])
        _wait_for_rows(silver_path, sent, 60)
    context.stop.set()
    layer.join(300)
    # The first batch took the event sent before the query started, with the query's own start: left out.
    singles = [b for b in _batches(spark, single, query, after=0) if b["rows"] == 1]
    single_views = _batches(spark, single, f"{query}_views")

    suite_seconds, baseline_seconds = timings["suite"]["median"], timings["passthrough"]["median"]
    ratio = suite_seconds / baseline_seconds
    silver_p99 = round(_percentile(measured["silver"], 0.99), 2) if measured["silver"] else float("nan")
    gold_p99 = round(_percentile(measured["gold"], 0.99), 2) if measured["gold"] else float("nan")
    single_seconds = statistics.median(_seconds(singles, "triggerExecution")) if singles else float("nan")
    backlog_bound = BACKLOG_TRIGGERS * plan["rate"]

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
        f"{base_per_batch:.2f} s for the passthrough's one append, with {commits:.1f} Delta commits per batch"
    )
    live_seconds = _seconds(live_batches, "triggerExecution")
    live_rows = [b["rows"] for b in live_batches]
    latency_cause = ""
    if live_seconds:
        took, held = statistics.median(live_seconds), statistics.median(live_rows)
        latency_cause = (
            f"an ingest micro-batch took {took:.2f} s (median of {len(live_seconds)}) for {held:,.0f} events, "
            f"{held / took:,.0f} events/s against {plan['rate']:,.0f} sent per second ({_phases(live_batches)})"
            + (
                ": the backlog grew while the producer sent, and an event waited for the batches ahead of it"
                if held / took < plan["rate"]
                else f": the query kept up, but a batch took {took:.1f} s where the trigger asks for 1 s, so an event "
                "waited for the batch in flight and then for its own, and when the producer stopped the batch in "
                "flight and the events sent during it were not yet in bronze"
            )
        )
    rate_held = held_rate >= RATE_HELD * plan["rate"]
    if not rate_held:
        # The stream took the events more slowly than asked: the layer was not offered the rate, so its backlog
        # says nothing of whether it keeps up with it.
        latency_cause = (
            f"the producer held {held_rate:,.0f} events/s, not {plan['rate']:,.0f} ({sending.events:,} events in "
            f"{sending.seconds:.1f} s: the stream accepted them no faster); " + latency_cause
        )
    views_cause = (
        f"a views micro-batch took {statistics.median(_seconds(live_views, 'triggerExecution')):.2f} s "
        f"(median of {len(live_views)}; {_phases(live_views)})"
        if live_views
        else "no views batch read anything"
    )
    single_cause = f"median of {len(singles)} one-event batches: {_phases(singles)}" if singles else "none measured"
    crowded = _beside(singles, single_views)
    alone = [batch for batch in singles if batch not in crowded]
    if crowded:
        # The views query reads each new silver version on its own trigger: its batch runs beside the next events'.
        single_cause += (
            f"; {len(crowded)} of them ran while a views batch did (median "
            f"{statistics.median(_seconds(crowded, 'triggerExecution')):.2f} s), "
            + (
                f"{len(alone)} alone (median {statistics.median(_seconds(alone, 'triggerExecution')):.2f} s)"
                if alone
                else "none alone"
            )
            + ": the two queries share the two cores"
        )
    rows_out = [
        {
            "case": f"{name}: drain {produced.events:,} events, {plan['per_batch']:,} per batch",
            "suite_events_per_s_per_core": round(produced.events / suite_seconds / cores),
            "passthrough_events_per_s_per_core": round(produced.events / baseline_seconds / cores),
            "suite/passthrough_time": round(ratio, 2),
            "spread": f"suite {timings['suite']['spread']}, passthrough {timings['passthrough']['spread']}",
        },
        {
            "case": f"{name}: {plan['rate']:,.0f} events/s for {plan['seconds']} s, 1 s trigger",
            "silver_p50_s": round(_percentile(measured["silver"], 0.5), 2) if measured["silver"] else "",
            "silver_p99_s": silver_p99,
            "gold_p50_s": round(_percentile(measured["gold"], 0.5), 2) if measured["gold"] else "",
            "gold_p99_s": gold_p99,
            "backlog_events": measured["backlog"],
            "sent_events_per_s": round(held_rate),
            "events_measured": len(measured["silver"]),
        },
        {
            "case": f"{name}: {len(singles)} micro-batches of one event, 1 s trigger",
            "batch_median_s": round(single_seconds, 3),
            "events_measured": len(singles),
        },
    ]
    return {
        "produced": produced.events,
        "produce_seconds": produce_seconds,
        "rows": rows_out,
        "runs": timings,
        "targets": [
            target(
                f"{name}: the suite's drain time over a bare {name}-to-Delta passthrough",
                f"suite/passthrough time <= {DRAIN_TARGET}",
                ratio,
                ratio <= DRAIN_TARGET,
                overhead_cause,
            ),
            target(
                f"{name}: backlog when {plan['rate']:,.0f} events/s stop, 1 s trigger",
                f"< {BACKLOG_TRIGGERS} triggers' worth ({backlog_bound:,.0f} events)",
                measured["backlog"],
                rate_held and measured["backlog"] < backlog_bound,
                latency_cause,
            ),
            target(
                f"{name}: produce-to-silver p99 at {plan['rate']:,.0f} events/s, 1 s trigger",
                f"p99 <= {SILVER_P99_TARGET:.0f} s",
                silver_p99,
                bool(measured["silver"]) and silver_p99 <= SILVER_P99_TARGET,
                latency_cause,
            ),
            target(
                f"{name}: produce-to-gold-views p99 at {plan['rate']:,.0f} events/s, 1 s trigger",
                f"p99 <= {GOLD_P99_TARGET:.0f} s",
                gold_p99,
                bool(measured["gold"]) and gold_p99 <= GOLD_P99_TARGET,
                views_cause,
            ),
            target(
                f"{name}: a micro-batch holding a single event",
                f"median <= {SINGLE_TARGET:.1f} s",
                single_seconds,
                bool(singles) and single_seconds <= SINGLE_TARGET,
                single_cause,
            ),
        ],
    }
