"""The local AWS endpoint taken away under a running speed layer, then brought back: the stream never stops.

The speed layer sends its quality metrics to CloudWatch and its alerts to SNS as ``conf/services.yaml`` does. While
the endpoint is down each micro-batch still lands in silver, and each call given up is one warning line and a row of
``audit/sink_failures``; once it is back, metrics and alerts flow again.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, load_config, validate_config
from etl_lib.core.run import JobResult, RunContext
from etl_lib.io.clients import local_client
from etl_lib.producer.events import encode, retail_events
from etl_lib.producer.sinks import FilesSink
from etl_lib.runtime.runner import run_job
from etl_lib.services.aws import AwsService
from tests.waiting import wait_until

# A fault scenario of the suite's own code, on the primary line (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
PER_PHASE = 200
RUN_ID = "sink-outage"


def table(path: Path, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of a Delta table as another engine reads them, none before its first commit."""
    try:
        return list(DeltaTable(str(path)).to_pyarrow_table(columns=columns).to_pylist())
    except Exception:  # noqa: BLE001 - no table yet
        return []


class Endpoint:
    """The SNS topic the alerts go to and an SQS queue subscribed to it (made again after a restart)."""

    def __init__(self, aws: AwsService) -> None:
        self.aws = aws
        self.subjects: list[str] = []
        self.topic = self.subscribe()

    def subscribe(self) -> str:
        sns, sqs = local_client(self.aws.aws, "sns"), local_client(self.aws.aws, "sqs")
        topic = str(sns.create_topic(Name="speed-quality-alerts")["TopicArn"])
        self.queue = sqs.create_queue(QueueName="speed-quality-inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        return topic

    def alerts(self) -> list[str]:
        """Subjects of the alerts received so far."""
        answer = local_client(self.aws.aws, "sqs").receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        self.subjects += [json.loads(m["Body"])["Subject"] for m in answer.get("Messages", [])]
        return self.subjects

    def metrics(self, namespace: str) -> list[str]:
        """Names of the metrics CloudWatch holds (the endpoint keeps them in memory: none after a restart)."""
        listed = local_client(self.aws.aws, "cloudwatch").list_metrics(Namespace=namespace)["Metrics"]
        return sorted({m["MetricName"] for m in listed})


def outage_config(base: SuiteConfig, root: Path, topic: str) -> SuiteConfig:
    data = base.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root / "lake")
    data["speed"].update(source="files", trigger_interval="1 second")
    data["speed"]["files"]["path"] = str(root / "landing")
    # Alerts as the services configuration sends them, to the test's endpoint, and to an SNS topic as well.
    alerts = load_config(PROJECT / "conf" / "services.yaml").quality.alerts
    data["quality"]["alerts"] = {**alerts.model_dump(mode="json"), "sns_topic_arn": topic}
    # The bundled events are from 2011: a freshness rule of severity error fails on every batch, so every batch
    # alerts; the table's threshold keeps the batches from being held back for it.
    events = data["quality"]["tables"]["silver/events"]
    events["score_threshold"] = 0.5
    events["rules"].append(
        {
            "name": "events_are_recent",
            "type": "freshness",
            "column": "timestamp",
            "max_age": "1 day",
            "severity": "error",
            "action": "warn",
        }
    )
    return validate_config(data)


@pytest.mark.slow
def test_cloudwatch_and_sns_out_of_reach_never_stop_the_stream_and_flow_again_when_back(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(aws)
    config = outage_config(suite_config, tmp_path, endpoint.topic)
    namespace = config.quality.alerts.cloudwatch_namespace
    assert namespace == "LakehouseEtlSuite"
    lake = Path(config.lakehouse.root)
    produced = list(itertools.islice(retail_events(pq.read_table(DATA)), 3 * PER_PHASE))
    phases = [produced[i * PER_PHASE : (i + 1) * PER_PHASE] for i in range(3)]
    landing = FilesSink(config.speed.files.path)

    def land(phase: list[dict[str, Any]]) -> set[str]:
        landing.send([(str(e["customer_id"]), encode(e)) for e in phase])  # one file: one micro-batch
        return {e["event_id"] for e in phase}

    outcome: dict[str, JobResult | BaseException] = {}
    context = RunContext.new("speed_layer", new_id=lambda: RUN_ID)

    def stream() -> None:
        try:
            outcome["result"] = run_job("speed_layer", config, spark, context)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    def until(condition: Callable[[], bool], what: str) -> None:
        def met() -> bool:
            assert job.is_alive(), f"the speed layer stopped before {what}: {outcome}"
            return condition()

        wait_until(met, what, timeout=240, poll=0.5)

    def silver() -> dict[str, int]:
        return {r["event_id"]: r["_batch_id"] for r in table(lake / "silver" / "events", ["event_id", "_batch_id"])}

    def given_up() -> list[dict[str, Any]]:
        columns = ["sink", "batch_id", "attempts", "error", "run_id", "job"]
        return sorted(table(lake / "audit" / "sink_failures", columns), key=lambda r: (r["batch_id"], r["sink"]))

    subject = "Data quality alert: silver/events"
    before = land(phases[0])
    job = threading.Thread(target=stream, name="speed-layer")
    caplog.set_level(logging.INFO)
    job.start()
    try:
        until(lambda: before <= silver().keys(), "the first events in silver")
        until(lambda: subject in endpoint.alerts(), "the first batch's alert")
        assert endpoint.metrics(namespace) == ["FailingRows", "QualityScore", "QuarantinedRows"]

        aws.down()
        during = land(phases[1])
        until(lambda: during <= silver().keys(), "the events of the outage in silver")
        outage_batches = sorted({batch for event, batch in silver().items() if event in during})
        expected = [(b, sink) for b in outage_batches for sink in ("cloudwatch", "sns")]
        until(lambda: [(r["batch_id"], r["sink"]) for r in given_up()] == expected, "the failures recorded")

        aws.up()
        endpoint.subjects.clear()
        assert endpoint.metrics(namespace) == []  # the restarted endpoint starts empty
        endpoint.subscribe()
        after = land(phases[2])
        until(lambda: after <= silver().keys(), "the events after the outage in silver")
        until(lambda: subject in endpoint.alerts(), "an alert after the outage")
        until(lambda: bool(endpoint.metrics(namespace)), "metrics after the outage")
    finally:
        context.stop.set()
        job.join(300)
        aws.up()
    assert not job.is_alive()

    result = outcome["result"]
    assert isinstance(result, JobResult), outcome
    assert silver().keys() == before | during | after
    assert endpoint.metrics(namespace) == ["FailingRows", "QualityScore", "QuarantinedRows"]
    failures = given_up()
    assert [(r["batch_id"], r["sink"], r["attempts"], r["run_id"], r["job"]) for r in failures] == [
        (batch, sink, 3, RUN_ID, "speed_layer") for batch, sink in expected
    ]
    assert all(r["error"].startswith("EndpointConnectionError: Could not connect") for r in failures), failures
    # One warning line per call given up, naming the sink and the error; nothing else warned of the endpoint
    # (botocore retries quietly).
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    lines = [r.getMessage() for r in warnings if r.name == "etl_lib.io.degraded"]
    assert [line.split(":")[0] for line in lines] == [f"sink {sink} unreachable" for _, sink in expected]
    assert all("EndpointConnectionError: Could not connect" in line for line in lines), lines
    others = [r.getMessage() for r in warnings if r.name != "etl_lib.io.degraded"]
    assert not [m for m in others if "EndpointConnectionError" in m or aws.aws.endpoint_url in m], others
    # The run's record counts them.
    given = len(expected)
    assert (result.metrics["sink_failures"], result.metrics["sink_failures_cloudwatch"]) == (given, given // 2)
    runs = table(lake / "audit" / "etl_runs", ["run_id", "status", "metrics"])
    [ended] = [r for r in runs if r["run_id"] == RUN_ID and r["status"] == "succeeded"]
    assert dict(ended["metrics"])["sink_failures"] == str(given)
