"""The speed layer end to end on the landing-folder source (Kafka and Kinesis: tests/integration)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import JobResult, RunContext
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse
from etl_lib.jobs import speed_layer
from etl_lib.layers import events, privacy
from etl_lib.producer.events import encode, retail_events
from etl_lib.producer.replay import replay
from etl_lib.producer.sinks import FilesSink
from etl_lib.runtime.runner import run_job
from etl_lib.serving import views
from tests.checkpoints import forget_last_batch

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"
CLOCK = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def speed_config(base: SuiteConfig, root: Path, landing: Path) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["speed"]["source"] = "files"
    data["speed"]["files"]["path"] = str(landing)
    data["run"]["available_now"] = True
    return validate_config(data)


def run(spark: SparkSession, config: SuiteConfig, run_id: str) -> dict[str, int]:
    context = RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: run_id)
    result: JobResult = run_job("speed_layer", config, spark, context)
    return {f"{w.layer}/{w.table}": w.rows_written for w in result.writes}


def read(spark: SparkSession, config: SuiteConfig, layer: str, table: str) -> Any:
    return lakehouse.read(spark, config.lakehouse.table_path(layer, table))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def streamed(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """3,000 replayed events and 12 malformed records, plus one event reusing an id with another body."""
    folder = tmp_path_factory.mktemp("speed")
    config = speed_config(suite_config, folder / "lake", folder / "landing")
    report = replay(config, "files", limit=3000, malformed=12, batch_size=700)
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), 3000))
    impostor = {**produced[0], "page_url": "/somewhere-else"}
    FilesSink(str(folder / "landing")).send([("x", encode(impostor))])
    first = run(spark, config, "run-1")
    versions = {t: lakehouse.current_version(spark, config.lakehouse.table_path(*t)) for t in speed_layer.TABLES}
    second = run(spark, config, "run-2")
    after = {t: lakehouse.current_version(spark, config.lakehouse.table_path(*t)) for t in speed_layer.TABLES}
    return {
        "config": config,
        "report": report,
        "produced": produced,
        "first": first,
        "second": second,
        "versions": (versions, after),
    }


def test_every_record_lands_once_and_bad_ones_are_dead_lettered(spark: SparkSession, streamed: dict[str, Any]) -> None:
    config, produced = streamed["config"], streamed["produced"]
    assert (streamed["report"].events, streamed["report"].malformed) == (3000, 12)
    distinct = {e["event_id"] for e in produced}
    first = streamed["first"]
    assert first["bronze/events"] == 3000 + 12 + 1
    assert first["bronze/events_deadletter"] == 12 + 1
    assert first["silver/events"] == len(distinct)
    assert first["silver/events_late"] == 0
    assert read(spark, config, "bronze", "events").count() == 3013
    silver = read(spark, config, "silver", "events")
    assert silver.count() == silver.select("event_id").distinct().count() == len(distinct)
    impostor = read(spark, config, "bronze", "events_deadletter").where("error LIKE 'event_id was already used%'")
    assert impostor.count() == 1


def test_views_equal_their_recomputation_from_silver(spark: SparkSession, streamed: dict[str, Any]) -> None:
    config = streamed["config"]
    speed = config.speed
    silver = read(spark, config, "silver", "events")
    recomputed = silver.transform(events.session_windows(speed.window, speed.page_view_type, speed.purchase_type))
    assert_df_equality(
        read(spark, config, "gold", "customer_sessions_5min"), recomputed, ignore_row_order=True, ignore_nullable=True
    )
    assert_df_equality(
        read(spark, config, "gold", "customer_value"),
        silver.transform(events.customer_value(speed.purchase_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert_df_equality(
        read(spark, config, "gold", "customer_sessions"),
        silver.transform(events.session_activity(speed.page_view_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    purchases = sum(
        1 for e in {e["event_id"]: e for e in streamed["produced"]}.values() if e["event_type"] == "purchase"
    )
    assert read(spark, config, "gold", "fulfillment_requests").count() == purchases


def test_the_same_checkpoint_on_the_same_input_writes_nothing(spark: SparkSession, streamed: dict[str, Any]) -> None:
    """The checkpoint holds the input read: a second run reads none of it again, and makes no commit at all.

    That the sinks themselves take a batch only once is the replay's test, below: there the checkpoint does not
    skip the batch, and the tables' own commits must.
    """
    assert set(streamed["second"].values()) == {0}
    before, after = streamed["versions"]
    assert after == before
    progress = read(spark, streamed["config"], "audit", "stream_progress").where("run_id = 'run-2'")
    assert progress.where("num_input_rows > 0").count() == 0


def test_a_batch_replayed_after_it_committed_writes_nothing_again(
    spark: SparkSession, streamed: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A crash after a batch's commits and before Spark noted it done: the restart runs the batch again."""
    config = streamed["config"]
    tables = [
        table for table in speed_layer.TABLES if lakehouse.is_delta_table(spark, config.lakehouse.table_path(*table))
    ]
    before = {table: lakehouse.current_version(spark, config.lakehouse.table_path(*table)) for table in tables}
    for query in ("speed_layer_files", "speed_layer_files_views"):
        forget_last_batch(config.lakehouse.query_checkpoint(query))
    with caplog.at_level(logging.INFO, logger="etl_lib.jobs.speed_layer"):
        written = run(spark, config, "run-3")
    replays = [r.getMessage() for r in caplog.records if "is a replay" in r.getMessage()]
    assert len(replays) == 2, replays  # the ingest query's batch and the views query's
    assert set(written.values()) == {0}
    after = {table: lakehouse.current_version(spark, config.lakehouse.table_path(*table)) for table in tables}
    assert after == before  # no commit at all, not even an empty one: every table holds what it held


def test_progress_and_state_are_recorded_per_batch(spark: SparkSession, streamed: dict[str, Any]) -> None:
    config = streamed["config"]
    state = read(spark, config, "audit", "stream_state")
    progress = read(spark, config, "audit", "stream_progress")
    assert state.agg({"records": "sum"}).first()[0] == 3013  # type: ignore[index]
    ingest = progress.where("query_name = 'speed_layer_files'")
    assert sorted(r["batch_id"] for r in ingest.collect()) == sorted(r["batch_id"] for r in state.collect())
    assert progress.where("query_name = 'speed_layer_files_views'").count() >= 1
    # The silver rules' results of every micro-batch, once each: held with the state and appended with it.
    results = read(spark, config, "audit", "quality_results").where("job = 'speed_layer'")
    rules = len(config.quality.tables["silver/events"].rules)
    assert sorted(r["batch_id"] for r in results.select("run_id", "batch_id").distinct().collect()) == sorted(
        r["batch_id"] for r in state.collect()
    )
    assert results.count() == rules * state.count()
    row = ingest.orderBy("batch_id").first()
    assert row is not None
    assert row["num_input_rows"] > 0
    assert "addBatch" in row["duration_ms"]
    assert json.loads(row["sources"])[0]["description"].startswith("FileStreamSource")


def test_the_audit_rows_a_killed_run_held_are_taken_from_bronze_by_the_next_run(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that ends before appending what it held: its batches' state and results come from bronze's commits."""
    config = speed_config(suite_config, tmp_path / "lake", tmp_path / "landing")
    replay(config, "files", limit=200, batch_size=100)
    with monkeypatch.context() as killed:
        killed.setattr(speed_layer._AuditLog, "append", lambda self, spark, metadata=None: None)
        first = run(spark, config, "run-1")
    assert first["audit/stream_state"] == 0
    assert not lakehouse.is_delta_table(spark, config.lakehouse.table_path("audit", "quality_results"))
    replay(config, "files", limit=300, batch_size=300)  # the same 200 events again, and 100 new ones
    run(spark, config, "run-2")

    bronze = read(spark, config, "bronze", "events").select("_batch_id").distinct()
    batches = sorted(row["_batch_id"] for row in bronze.collect())
    state = read(spark, config, "audit", "stream_state")
    assert sorted(row["batch_id"] for row in state.collect()) == batches
    assert state.agg({"records": "sum"}).first()[0] == 500  # type: ignore[index]
    results = read(spark, config, "audit", "quality_results")
    evaluated = results.select("run_id", "batch_id").distinct().collect()
    assert sorted(row["batch_id"] for row in evaluated) == batches
    assert {row["run_id"] for row in evaluated} == {"run-1", "run-2"}
    assert results.count() == len(config.quality.tables["silver/events"].rules) * len(batches)


def test_events_later_than_the_watermark_are_set_aside(spark: SparkSession, streamed: dict[str, Any]) -> None:
    config = streamed["config"]
    newest = max(e["timestamp"] for e in streamed["produced"])
    stale = dict(streamed["produced"][5], event_id="stale-1", timestamp="2010-11-30T00:00:00Z")
    fine = dict(streamed["produced"][5], event_id="fine-1", timestamp=newest)
    FilesSink(config.speed.files.path).send([("x", encode(stale)), ("x", encode(fine))])
    written = run(spark, config, "run-3")
    assert written["silver/events_late"] == 1
    assert written["silver/events"] == 1
    late = read(spark, config, "silver", "events_late").first()
    assert late is not None
    assert (late["event_id"], late["_watermark"]) == (
        "stale-1",
        dt.datetime.fromisoformat(newest.rstrip("Z")) - dt.timedelta(minutes=10),
    )


def test_a_purchase_failing_a_quarantine_rule_waits_in_quarantine(
    spark: SparkSession, streamed: dict[str, Any]
) -> None:
    from etl_lib.io.portable import table_rows

    config = streamed["config"]
    purchase = next(e for e in streamed["produced"] if e["event_type"] == "purchase")
    newest = max(e["timestamp"] for e in streamed["produced"])
    refunded_twice = dict(purchase, event_id="negative-1", amount=-12.5, timestamp=newest)
    FilesSink(config.speed.files.path).send([("x", encode(refunded_twice))])
    written = run(spark, config, "run-4")
    assert written["silver/events"] == 0
    held = [q for q in table_rows(config.lakehouse.table_path("audit", "quarantine")) if q["run_id"] == "run-4"]
    assert [(q["table"], [f["rule"] for f in q["failures"]]) for q in held] == [
        ("silver/events", ["purchase_amount_not_negative"])
    ]
    assert '"event_id":"negative-1"' in held[0]["record"]


def test_personal_columns_are_protected_in_silver_its_views_and_their_recomputation(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "events-pii-key-3c1f9a"
    monkeypatch.setenv("ETL_TEST_EVENTS_PII_KEY", key)
    data = speed_config(suite_config, tmp_path / "lake", tmp_path / "landing").model_dump(mode="json")
    data["privacy"] = {
        "pii": {"events": {"customer_id": "hash", "user_agent": "mask"}},
        "hash_key_secret": "env:ETL_TEST_EVENTS_PII_KEY",
    }
    config = validate_config(data)
    replay(config, "files", limit=600, batch_size=300)
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), 600))
    run(spark, config, "pii-1")

    def mac(text: str) -> str:
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()

    silver = read(spark, config, "silver", "events")
    rows = silver.select("event_id", "customer_id", "user_agent", "_payload_digest").collect()
    by_id = {e["event_id"]: e for e in produced}
    assert len(rows) == len(by_id)
    for row in rows:
        event = by_id[row["event_id"]]
        assert row["customer_id"] == mac(event["customer_id"])
        if event.get("user_agent"):
            assert row["user_agent"] == "*" * (len(event["user_agent"]) - 4) + event["user_agent"][-4:]
        assert row["_payload_digest"] == mac(encode(event).decode())  # keyed: no guess can be tested
    # The views group by the protected values, and the serving layer's recomputation from bronze agrees.
    speed = config.speed
    windows = read(spark, config, "gold", "customer_sessions_5min")
    assert_df_equality(
        windows,
        silver.transform(events.session_windows(speed.window, speed.page_view_type, speed.purchase_type)),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    protect = privacy.pii_protection(config.privacy.pii["events"], key.encode())
    bronze = read(spark, config, "bronze", "events")
    recomputed = bronze.transform(views.recomputed_session_windows(config.entities["events"], speed, protect))
    assert_df_equality(windows, recomputed, ignore_row_order=True, ignore_nullable=True, ignore_column_order=True)
    for layer, table in (("silver", "events"), ("gold", "customer_sessions_5min"), ("gold", "customer_value")):
        text = repr(read(spark, config, layer, table).collect())
        assert key not in text
        assert not any(f"'{e['customer_id']}'" in text for e in produced[:50]), f"{layer}/{table}"


def test_a_field_declared_later_becomes_a_silver_column_and_a_type_change_is_refused(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    config = speed_config(suite_config, tmp_path / "lake", tmp_path / "landing")
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), 400))
    sink = FilesSink(str(tmp_path / "landing"))
    sink.send([("x", encode(e)) for e in produced[:200]])
    # Producers start sending a field the entity does not declare: kept in bronze, silver unchanged.
    with_coupon = [{**e, "coupon": f"C{i % 7}"} for i, e in enumerate(produced[200:300])]
    sink.send([("x", encode(e)) for e in with_coupon])
    run(spark, config, "drift-2")
    assert "coupon" not in read(spark, config, "silver", "events").columns
    payloads = read(spark, config, "bronze", "events").where("payload LIKE '%\"coupon\"%'").count()
    assert payloads == len(with_coupon)

    # Declared in the configuration, it becomes a column of silver; rows landed before keep it null.
    data = config.model_dump(mode="json")
    data["entities"]["events"]["columns"]["coupon"] = "string"
    evolved = validate_config(data)
    later = [{**e, "coupon": f"D{i % 5}"} for i, e in enumerate(produced[300:])]
    sink.send([("x", encode(e)) for e in later])
    context = RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: "drift-3")
    result = run_job("speed_layer", evolved, spark, context)
    assert result.metrics["silver_columns_added"] == "coupon string"
    silver = read(spark, config, "silver", "events")
    coupons = {row["event_id"]: row["coupon"] for row in silver.select("event_id", "coupon").collect()}
    assert len(coupons) == len({e["event_id"] for e in produced})
    earlier = {e["event_id"] for e in produced[:300]}
    assert {coupons[i] for i in earlier} == {None}
    assert {e["event_id"]: coupons[e["event_id"]] for e in later if e["event_id"] not in earlier} == {
        e["event_id"]: e["coupon"] for e in later if e["event_id"] not in earlier
    }

    # A declared column may not change its type in place: one message, before any query starts.
    data["entities"]["events"]["columns"]["quantity"] = "string"
    with pytest.raises(ConfigError, match="quantity is int in the table, string in the configuration"):
        run(spark, validate_config(data), "drift-4")


def test_a_batch_is_judged_against_the_events_of_earlier_batches_and_of_earlier_runs(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path: Path
) -> None:
    """Within a run the query keeps the ids it appended; a new run starts from silver's."""
    config = speed_config(suite_config, tmp_path / "lake", tmp_path / "landing")
    config = config.model_copy(
        update={
            "speed": config.speed.model_copy(
                update={"files": config.speed.files.model_copy(update={"max_files_per_trigger": 1})}
            )
        }
    )
    first, second, third, fourth = itertools.islice(
        (e for e in retail_events(pq.read_table(DATA)) if e["event_type"] == "page_view"), 4
    )
    other = {"page_url": "/somewhere-else"}
    sink = FilesSink(str(tmp_path / "landing"))
    sink.send([("a", encode(first)), ("b", encode(second))])
    time.sleep(1.1)  # the file source takes files in the order of their modification times
    # A repeat of a kept event, an event reusing a kept id with another body, a new event: one batch later.
    sink.send([("a", encode(first)), ("b", encode({**second, **other})), ("c", encode(third))])
    run(spark, config, "kept-1")
    sink.send([("c", encode(third)), ("a", encode({**first, **other})), ("d", encode(fourth))])
    run(spark, config, "kept-2")

    silver = read(spark, config, "silver", "events")
    assert sorted(r["event_id"] for r in silver.collect()) == sorted(
        e["event_id"] for e in (first, second, third, fourth)
    )
    assert {r["event_id"]: r["page_url"] for r in silver.collect()}[second["event_id"]] == second["page_url"]
    taken = read(spark, config, "bronze", "events_deadletter").where("error LIKE 'event_id was already used%'")
    assert sorted(r["_batch_id"] for r in taken.collect()) == [1, 2]
    state = read(spark, config, "audit", "stream_state").orderBy("batch_id")
    assert [(r["batch_id"], r["fresh"], r["duplicates"], r["dead_letters"]) for r in state.collect()] == [
        (0, 2, 0, 0),
        (1, 1, 1, 1),
        (2, 1, 1, 1),
    ]
