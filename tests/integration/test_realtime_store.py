"""The real-time store: the speed layer writes the latest customer metrics to a real Redis server."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.cli import main
from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.io import lakehouse
from etl_lib.io.clients import redis_client
from etl_lib.io.degraded import Origin
from etl_lib.jobs.speed_layer import query_name
from etl_lib.producer.replay import replay
from etl_lib.runtime.runner import run_job
from etl_lib.services.redis import RedisService
from etl_lib.serving import realtime
from tests.checkpoints import forget_last_batch
from tests.integration.conftest import REDIS_TEST_PASSWORD

# A test of the suite's own logic, on the primary line: the store is written through redis-py; the views it copies
# are built on both lines in spark/test_speed_layer (see the primary_line marker).
pytestmark = pytest.mark.primary_line

CLOCK = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def store_config(base: SuiteConfig, folder: Path) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(folder / "lake")
    data["speed"]["source"] = "files"
    data["speed"]["files"]["path"] = str(folder / "landing")
    data["run"]["available_now"] = True
    data["serving"]["realtime_store"] = {"enabled": True, "key_prefix": "test:customer:", "pipeline_size": 64}
    return validate_config(data)


def stored(client: Any, prefix: str) -> dict[str, dict[str, str]]:
    return {key.removeprefix(prefix): client.hgetall(key) for key in client.scan_iter(f"{prefix}*")}


@pytest.fixture(scope="module")
def streamed(
    spark: SparkSession,
    suite_config: SuiteConfig,
    redis_server: RedisService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    config = store_config(suite_config, tmp_path_factory.mktemp("realtime"))
    client = redis_client(config.services.redis)
    for key in client.scan_iter("test:customer:*"):
        client.delete(key)
    replay(config, "files", limit=2500, batch_size=800)
    context = RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: "rt-1")
    run_job("speed_layer", config, spark, context)
    return config


def test_the_server_wants_its_password_which_is_nowhere_on_disk_or_command_line(redis_server: RedisService) -> None:
    anonymous = redis_py.Redis(host=redis_server.host, port=redis_server.port, socket_timeout=2)
    with pytest.raises(redis_py.exceptions.AuthenticationError):
        anonymous.ping()
    pid = redis_server.process.pid()
    assert pid is not None
    assert REDIS_TEST_PASSWORD not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    for path in redis_server.state_dir.rglob("*"):
        if path.is_file():
            assert REDIS_TEST_PASSWORD not in path.read_text(errors="replace"), path


def test_every_customer_of_the_stream_is_in_redis_as_in_delta(spark: SparkSession, streamed: SuiteConfig) -> None:
    config = streamed
    lake = config.lakehouse
    values = lakehouse.read(spark, lake.table_path("gold", "customer_value"))
    sessions = lakehouse.read(spark, lake.table_path("gold", "customer_sessions"))
    customers = lakehouse.read(spark, lake.table_path("silver", "events")).select("customer_id")
    expected = {
        row["customer_id"]: realtime.hash_of(row.asDict())
        for row in customers.transform(realtime.customer_metrics(values, sessions, 0, CLOCK)).collect()
    }
    found = stored(redis_client(config.services.redis), "test:customer:")
    assert len(found) == customers.distinct().count() == 60

    def without_batch(fields: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in fields.items() if k not in ("updated_batch", "updated_at")}

    assert {k: without_batch(v) for k, v in found.items()} == {k: without_batch(v) for k, v in expected.items()}
    assert {v["updated_at"] for v in found.values()} == {CLOCK.replace(tzinfo=None).isoformat()}


def test_writing_a_batch_again_changes_nothing(spark: SparkSession, streamed: SuiteConfig) -> None:
    config = streamed
    client = redis_client(config.services.redis)
    before = stored(client, "test:customer:")
    lake = config.lakehouse

    def views() -> dict[str, list[Any]]:
        tables = ("customer_value", "customer_sessions", "customer_sessions_5min")
        return {t: sorted(lakehouse.read(spark, lake.table_path("gold", t)).collect()) for t in tables}

    gold = views()
    # The views query's last micro-batch (it wrote the views and the store) is run again, as after a crash
    # between its writes and Spark's record of it: its increments must not be added twice, nor the store change.
    query = f"{query_name(config)}_views"
    replayed = forget_last_batch(lake.query_checkpoint(query))
    context = RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: "rt-2")
    run_job("speed_layer", config, spark, context)
    progress = lakehouse.read(spark, lake.table_path("audit", "stream_progress"))
    again = progress.where((progress.run_id == "rt-2") & (progress.query_name == query)).select("batch_id").collect()
    assert [row["batch_id"] for row in again] == [replayed]
    assert views() == gold
    assert stored(client, "test:customer:") == before


def test_lookup_answers_from_redis_then_falls_back_to_delta(
    streamed: SuiteConfig, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = streamed
    client = redis_client(config.services.redis)
    customer, fields = next(iter(stored(client, "test:customer:").items()))
    overrides = [
        "--set",
        f"lakehouse.root={config.lakehouse.root}",
        "--set",
        "serving.realtime_store.key_prefix='test:customer:'",
    ]
    conf = ["--conf", str(Path(__file__).resolve().parents[2] / "conf" / "test.yaml")]
    assert main(["serve", "customer", customer, *conf, *overrides]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer == {"source": "redis", "customer": fields}

    # Not in Redis (expired, say): the Delta views answer with the same values.
    client.delete(f"test:customer:{customer}")
    assert main(["serve", "customer", customer, *conf, *overrides]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["source"] == "delta"
    assert answer["customer"] == {k: v for k, v in fields.items() if k not in ("updated_batch", "updated_at")}

    # Redis unreachable: the same.
    down = ["--set", "services.redis.port=1"]
    assert main(["serve", "customer", customer, *conf, *overrides, *down]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "delta"

    assert main(["serve", "customer", "no-such-customer", *conf, *overrides]) == 1


def test_redis_out_of_reach_is_given_up_then_the_store_catches_up_when_it_is_back(
    spark: SparkSession, streamed: SuiteConfig, redis_server: RedisService, caplog: pytest.LogCaptureFixture
) -> None:
    # Last of the module: the server restarted here holds only what this test writes (it keeps nothing on disk).
    config = streamed
    lake = config.lakehouse
    customers = sorted(
        r["customer_id"]
        for r in lakehouse.read(spark, lake.table_path("silver", "events")).select("customer_id").distinct().collect()
    )
    first, second = customers[:4], customers[4:7]

    def metrics(chosen: list[str], batch: int) -> Any:
        step = realtime.customer_metrics(
            lakehouse.read(spark, lake.table_path("gold", "customer_value")),
            lakehouse.read(spark, lake.table_path("gold", "customer_sessions")),
            batch,
            CLOCK,
        )
        return spark.createDataFrame([(c,) for c in chosen], "customer_id STRING").transform(step)

    def expected(chosen: list[str], batch: int) -> dict[str, dict[str, str]]:
        return {row["customer_id"]: realtime.hash_of(row.asDict()) for row in metrics(chosen, batch).collect()}

    backlog = realtime.Backlog()
    redis_server.down()
    try:
        with caplog.at_level(logging.INFO):
            lost = realtime.publish(
                metrics(first, 101), config, origin=Origin("rt-outage", "speed_layer", 101), backlog=backlog
            )
            # Still down: the backlog cannot be written, so the next batch is not written either but joins it.
            held = realtime.publish(
                metrics(second, 102), config, origin=Origin("rt-outage", "speed_layer", 102), backlog=backlog
            )
    finally:
        redis_server.up()
    assert lost is not None
    assert held is not None
    assert (lost.sink, lost.keys, lost.attempts, lost.origin) == (
        "redis",
        tuple(first),
        3,
        Origin("rt-outage", "speed_layer", 101),
    )
    assert lost.error.startswith("ConnectionError: Error 111 connecting to"), lost.error
    assert held.keys == tuple(second)
    assert "7 customers of micro-batches [101, 102] kept for the next batch" in held.sending
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [lost.line, held.line]
    assert backlog.hashes == {**expected(first, 101), **expected(second, 102)}

    recorded = lakehouse.read(spark, lake.table_path("audit", "sink_failures")).where("run_id = 'rt-outage'")
    assert_df_equality(
        recorded.select("sink", "batch_id", "keys", "attempts", "job"),
        spark.createDataFrame(
            [("redis", 101, first, 3, "speed_layer"), ("redis", 102, second, 3, "speed_layer")],
            "sink STRING, batch_id BIGINT, keys ARRAY<STRING>, attempts INT, job STRING",
        ),
        ignore_row_order=True,
        ignore_nullable=True,
    )

    # Redis is back: the next publish writes the backlog first, then its own batch (over the second's values).
    caught_up = realtime.publish(
        metrics(second, 103), config, origin=Origin("rt-outage", "speed_layer", 103), backlog=backlog
    )
    assert caught_up is None
    assert len(backlog) == 0
    found = stored(redis_client(config.services.redis), "test:customer:")
    assert found == {**expected(first, 101), **expected(second, 103)}
