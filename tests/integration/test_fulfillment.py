"""The fulfilment relay: the outbox's requests as AWS Step Functions executions, on the local AWS endpoint."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import signal
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.errors import JobFailedError
from etl_lib.io import lakehouse
from etl_lib.io.clients import local_client
from etl_lib.layers import events
from etl_lib.producer.events import retail_events
from etl_lib.producer.replay import replay
from etl_lib.runtime.runner import run_job
from etl_lib.services.aws import AwsService
from tests.integration.conftest import SuiteRun
from tests.notebooks import DbUtils
from tests.ports import closed_port
from tests.waiting import wait_until

# The relay's logic is the suite's own (boto3 and Delta MERGEs): run on the primary line only.
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
CLOCK = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
ROLE = "arn:aws:iam::123456789012:role/fulfillment"
#: The outbox's columns the relay writes, as the tests compare them.
OUTCOMES = "request_id STRING, status STRING, execution_arn STRING, execution_status STRING, attempts INT, error STRING"


def state_machine(aws: AwsService, state: dict[str, Any]) -> str:
    """A state machine of its own for a test, on the local endpoint, of one state."""
    ending = {"End": True} if state["Type"] == "Pass" else {}
    definition = {"StartAt": "Fulfil", "States": {"Fulfil": {**state, **ending}}}
    client = local_client(aws.aws, "stepfunctions")
    created = client.create_state_machine(
        name=f"order-fulfillment-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=ROLE
    )
    return str(created["stateMachineArn"])


ACCEPT = {"Type": "Pass", "Result": {"accepted": True}}
OUT_OF_STOCK = {"Type": "Fail", "Error": "OutOfStock", "Cause": "no units left"}


def relay_config(base: SuiteConfig, root: Path, arn: str | None, **fulfillment_settings: Any) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["fulfillment"] = {"state_machine_arn": arn, "local_endpoint": True, **fulfillment_settings}
    return validate_config(data)


def purchases(count: int) -> list[dict[str, Any]]:
    """The first ``count`` purchases of the Online Retail events the producer replays."""
    stream = (e for e in retail_events(pq.read_table(DATA)) if e["event_type"] == "purchase")
    return list(itertools.islice(stream, count))


def write_outbox(spark: SparkSession, config: SuiteConfig, bought: list[dict[str, Any]]) -> str:
    """The outbox the speed layer would write for these purchases (its own step, one micro-batch)."""
    rows = [
        (
            e["event_id"],
            e["event_type"],
            e["customer_id"],
            e["session_id"],
            dt.datetime.fromisoformat(e["timestamp"]),
            e["product_id"],
            e["quantity"],
            Decimal(str(e["amount"])),
            0,
        )
        for e in bought
    ]
    schema = (
        "event_id STRING, event_type STRING, customer_id STRING, session_id STRING, timestamp TIMESTAMP, "
        "product_id STRING, quantity INT, amount DECIMAL(18,3), _batch_id BIGINT"
    )
    path = config.lakehouse.table_path("gold", "fulfillment_requests")
    lakehouse.append(spark.createDataFrame(rows, schema).transform(events.fulfillment_requests("purchase")), path)
    return path


def request_input(event: dict[str, Any]) -> dict[str, Any]:
    """What an execution of the event's request must get as its input."""
    return {
        "request_id": event["event_id"],
        "customer_id": event["customer_id"],
        "session_id": event["session_id"],
        "product_id": event["product_id"],
        "quantity": event["quantity"],
        "amount": event["amount"],
        "purchased_at": dt.datetime.fromisoformat(event["timestamp"]).isoformat(),
    }


def executions(aws: AwsService, arn: str) -> dict[str, dict[str, Any]]:
    """Every execution of the state machine, by name: its ARN, status and input."""
    client = local_client(aws.aws, "stepfunctions")
    found = {}
    for page in client.get_paginator("list_executions").paginate(stateMachineArn=arn):
        for listed in page["executions"]:
            assert listed["name"] not in found, f"two executions named {listed['name']}"
            execution = client.describe_execution(executionArn=listed["executionArn"])
            found[listed["name"]] = {
                "arn": listed["executionArn"],
                "status": execution["status"],
                "input": json.loads(execution["input"]),
            }
    return found


def outcomes(spark: SparkSession, path: str) -> DataFrame:
    return lakehouse.read(spark, path).select(*[c.split()[0] for c in OUTCOMES.split(", ")])


def execution_arn(arn: str, name: str) -> str:
    return arn.replace(":stateMachine:", ":execution:") + ":" + name


def relay_run(spark: SparkSession, config: SuiteConfig, run_id: str) -> Any:
    context = RunContext.new("dispatch_fulfillment", clock=lambda: CLOCK, new_id=lambda: run_id)
    return run_job("dispatch_fulfillment", config, spark, context)


def test_each_request_starts_one_execution_named_after_it_with_the_request_as_input(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path
) -> None:
    arn = state_machine(aws, ACCEPT)
    config = relay_config(suite_config, tmp_path / "lake", arn, parallelism=4)
    bought = purchases(30)
    path = write_outbox(spark, config, bought)
    # A relay that died after starting these three executions and before writing what came of them.
    client = local_client(aws.aws, "stepfunctions")
    for event in bought[:3]:
        client.start_execution(stateMachineArn=arn, name=event["event_id"], input=json.dumps(request_input(event)))
    wait_until(lambda: {e["status"] for e in executions(aws, arn).values()} == {"SUCCEEDED"}, "executions end", 30)

    first = relay_run(spark, config, "relay-1")
    assert (first.metrics["requests_found"], first.metrics["requests_started"]) == (30, 30)
    assert (first.metrics["requests_failed"], first.metrics["requests_pending"]) == (0, 0)
    wait_until(lambda: {e["status"] for e in executions(aws, arn).values()} == {"SUCCEEDED"}, "executions end", 30)
    # The next run asks how the running ones ended.
    second = relay_run(spark, config, "relay-2")
    assert second.metrics["requests_found"] == 27

    found = executions(aws, arn)
    assert sorted(found) == sorted(e["event_id"] for e in bought)
    assert all(found[e["event_id"]]["input"] == request_input(e) for e in bought)
    # The three started before took two calls each: the start Step Functions refused as a name taken, and the
    # look-up of the execution that holds it.
    expected = spark.createDataFrame(
        [
            (e["event_id"], "started", execution_arn(arn, e["event_id"]), "SUCCEEDED", 2 if i < 3 else 1, None)
            for i, e in enumerate(bought)
        ],
        OUTCOMES,
    )
    assert_df_equality(outcomes(spark, path), expected, ignore_row_order=True, ignore_nullable=True)
    assert lakehouse.read(spark, path).where(F.col("dispatched_at") != CLOCK).isEmpty()

    version = lakehouse.current_version(spark, path)
    third = relay_run(spark, config, "relay-3")
    assert third.metrics["requests_found"] == 0
    assert lakehouse.current_version(spark, path) == version
    assert len(executions(aws, arn)) == 30


def test_a_request_refused_for_itself_fails_with_its_error_and_a_failed_execution_is_recorded(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path
) -> None:
    # No such state machine: nothing is tried, the requests wait, and the run fails saying why.
    missing = "arn:aws:states:us-east-1:123456789012:stateMachine:no-such-machine"
    config = relay_config(suite_config, tmp_path / "lake", missing)
    bought = purchases(3)
    path = write_outbox(spark, config, bought)
    with pytest.raises(JobFailedError, match=r"did not take the fulfillment requests: .*StateMachineDoesNotExist"):
        relay_run(spark, config, "relay-no-machine")
    assert {(r["status"], r["attempts"], r["error"]) for r in outcomes(spark, path).collect()} == {("pending", 0, None)}

    # A name already taken by an execution of another input (another request's, or edited by hand): that request
    # fails with the reason; the others are started; and how an execution that ran and failed ended is recorded.
    arn = state_machine(aws, OUT_OF_STOCK)
    config = relay_config(suite_config, tmp_path / "lake", arn)
    taken = bought[0]["event_id"]
    client = local_client(aws.aws, "stepfunctions")
    client.start_execution(stateMachineArn=arn, name=taken, input=json.dumps({"request_id": "another"}))
    relay_run(spark, config, "relay-started")
    wait_until(lambda: {e["status"] for e in executions(aws, arn).values()} == {"FAILED"}, "the executions end", 30)
    relay_run(spark, config, "relay-followed")
    expected = spark.createDataFrame(
        [(taken, "failed", None, None, 2, f"an execution named {taken} exists with another input")]
        + [
            (e["event_id"], "started", execution_arn(arn, e["event_id"]), "FAILED", 1, "OutOfStock: no units left")
            for e in bought[1:]
        ],
        OUTCOMES,
    )
    assert_df_equality(outcomes(spark, path), expected, ignore_row_order=True, ignore_nullable=True)


def test_step_functions_out_of_reach_leaves_every_request_pending_and_a_later_run_starts_them(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path
) -> None:
    arn = state_machine(aws, ACCEPT)
    settings = {"attempts": 2, "connect_timeout_seconds": 0.5}
    reachable = relay_config(suite_config, tmp_path / "lake", arn, **settings)
    data = reachable.model_dump(mode="json")
    data["services"]["aws"]["port"] = closed_port()
    unreachable = validate_config(data)
    bought = purchases(5)
    path = write_outbox(spark, reachable, bought)

    with pytest.raises(JobFailedError, match=r"did not take .*Could not connect.*5 left pending \(none lost\)"):
        relay_run(spark, unreachable, "down")
    assert {(r["status"], r["attempts"]) for r in outcomes(spark, path).collect()} == {("pending", 0)}

    # Back, the relay's notebook (as a Databricks job would run it) starts them.
    notebook = PROJECT / "notebooks" / "dispatch_fulfillment.py"
    overrides = [f"lakehouse.root={tmp_path / 'lake'}", f"fulfillment.state_machine_arn={arn}"]
    overrides += ["fulfillment.local_endpoint=true"]
    dbutils = DbUtils({"conf": str(PROJECT / "conf" / "test.yaml"), "overrides": "\n".join(overrides)})
    namespace = {"spark": spark, "dbutils": dbutils, "__name__": "__main__"}
    exec(compile(notebook.read_text(), str(notebook), "exec"), namespace)  # noqa: S102
    back = namespace["result"]
    assert (back.job, back.metrics["requests_started"], back.metrics["requests_pending"]) == (
        "dispatch_fulfillment",
        5,
        0,
    )
    assert sorted(executions(aws, arn)) == sorted(e["event_id"] for e in bought)
    assert {r["status"] for r in outcomes(spark, path).collect()} == {"started"}


def test_a_relay_killed_in_the_middle_then_run_again_starts_every_request_once(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path, suite_run: type[SuiteRun]
) -> None:
    arn = state_machine(aws, ACCEPT)
    root = tmp_path / "lake"
    settings = {"commit_every": 10, "parallelism": 2}
    config = relay_config(suite_config, root, arn, **settings)
    bought = purchases(80)
    path = write_outbox(spark, config, bought)
    before = lakehouse.current_version(spark, path)
    assert before is not None
    overrides = {"fulfillment.state_machine_arn": arn, "fulfillment.local_endpoint": "true"}
    overrides |= {f"fulfillment.{key}": str(value) for key, value in settings.items()}
    running = suite_run("dispatch_fulfillment", root, overrides)
    # Killed once two batches of outcomes are written, in the middle of the relay (8 batches of 10).
    wait_until(lambda: (lakehouse.current_version(spark, path) or 0) >= before + 2, "two commits of outcomes", 180)
    running.signal(signal.SIGKILL)
    running.finish(60)
    recorded = outcomes(spark, path).where(F.col("status") == "started").count()
    assert 20 <= recorded < 80, running.output[-3000:]
    assert len(executions(aws, arn)) >= recorded

    # Run again in one commit (the default commit_every).
    again = relay_run(spark, relay_config(suite_config, root, arn), "relay-again")
    assert again.metrics["requests_started"] + recorded >= 80
    found = executions(aws, arn)
    assert sorted(found) == sorted(e["event_id"] for e in bought)
    rows = outcomes(spark, path).collect()
    assert {(r["status"], r["execution_arn"]) for r in rows} == {
        ("started", execution_arn(arn, e["event_id"])) for e in bought
    }


def test_the_speed_layer_relays_after_each_batch_and_goes_on_while_step_functions_is_down(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path
) -> None:
    arn = state_machine(aws, ACCEPT)
    data = relay_config(suite_config, tmp_path / "lake", arn, attempts=1).model_dump(mode="json")
    data["speed"] |= {"source": "files", "dispatch_fulfillment": True}
    data["speed"]["files"]["path"] = str(tmp_path / "landing")
    data["run"]["available_now"] = True
    config = validate_config(data)
    data["services"]["aws"]["port"] = closed_port()
    down = validate_config(data)

    replay(config, "files", limit=100)
    run_job("speed_layer", down, spark, RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: "sl-down"))
    path = config.lakehouse.table_path("gold", "fulfillment_requests")
    assert {r["status"] for r in outcomes(spark, path).collect()} == {"pending"}
    failures = lakehouse.read(spark, config.lakehouse.table_path("audit", "sink_failures")).collect()
    assert failures
    assert {(f["sink"], f["run_id"], f["job"]) for f in failures} == {("stepfunctions", "sl-down", "speed_layer")}
    assert "Could not connect" in failures[0]["error"]

    replay(config, "files", limit=200)
    run_job("speed_layer", config, spark, RunContext.new("speed_layer", clock=lambda: CLOCK, new_id=lambda: "sl-up"))
    rows = outcomes(spark, path).collect()
    sent = itertools.islice(retail_events(pq.read_table(DATA)), 200)
    assert sorted(r["request_id"] for r in rows) == sorted(e["event_id"] for e in sent if e["event_type"] == "purchase")
    assert {r["status"] for r in rows} == {"started"}
    assert sorted(executions(aws, arn)) == sorted(r["request_id"] for r in rows)
