"""Quality metrics to CloudWatch and alerts to SNS, against the local AWS endpoint."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

from pyspark.sql import SparkSession

from etl_lib.config import AlertsConfig, RuleConfig, SuiteConfig, TableQualityConfig
from etl_lib.io.clients import local_client
from etl_lib.io.degraded import Origin, SinkGuard
from etl_lib.quality import alerts
from etl_lib.quality.engine import evaluate
from etl_lib.services.aws import AwsService


def test_metrics_go_to_cloudwatch_and_a_held_batch_alerts_through_sns(
    spark: SparkSession, suite_config: SuiteConfig, aws: AwsService
) -> None:
    sns, sqs, cloudwatch = (local_client(aws.aws, name) for name in ("sns", "sqs", "cloudwatch"))
    topic = sns.create_topic(Name="data-quality-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="quality-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    frame = spark.createDataFrame([("a", 1), ("b", -5), ("c", None)], "id STRING, qty INT")
    table = TableQualityConfig(
        key=["id"],
        rules=[
            RuleConfig(name="qty_known", type="completeness", column="qty", severity="error"),
            RuleConfig(name="qty_positive", type="range", column="qty", min=0),
        ],
    )
    evaluation = evaluate(frame, "silver/orders", table, 0.9, "run-9", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert evaluation.held
    settings = AlertsConfig(cloudwatch_namespace="DataQuality", sns_topic_arn=topic, local_endpoint=True)
    guard = SinkGuard(suite_config.sinks, Origin("run-9", "test"))
    alerts.announce(settings, suite_config.services, evaluation, guard)
    assert guard.failures == []

    names = {
        (m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"])))
        for m in cloudwatch.list_metrics(Namespace="DataQuality")["Metrics"]
    }
    assert ("QualityScore", (("Table", "silver/orders"),)) in names
    assert ("FailingRows", (("Rule", "qty_positive"), ("Table", "silver/orders"))) in names
    stats = cloudwatch.get_metric_statistics(
        Namespace="DataQuality",
        MetricName="QualityScore",
        Dimensions=[{"Name": "Table", "Value": "silver/orders"}],
        StartTime=dt.datetime(2000, 1, 1),
        EndTime=dt.datetime(2100, 1, 1),
        Period=86400 * 365,
        Statistics=["Minimum"],
    )
    assert [point["Minimum"] for point in stats["Datapoints"]] == [0.0]

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]
    notification = json.loads(messages[0]["Body"])
    assert notification["Subject"] == "Data quality alert: silver/orders"
    body = json.loads(notification["Message"])
    assert (body["table"], body["held_back"], body["score"]) == ("silver/orders", True, 0.0)
    assert [r["rule"] for r in body["failing_rules"]] == ["qty_known", "qty_positive"]


def recorded(aws: AwsService, action: str) -> bytes:
    """Drive moto's request recorder on the endpoint (``reset``, ``start``, ``stop``, ``download``)."""
    data = None if action == "download" else b""  # a POST but for the download
    with urllib.request.urlopen(
        f"http://{aws.aws.host}:{aws.aws.port}/moto-api/recorder/{action}-recording", data=data, timeout=10
    ) as response:
        return bytes(response.read())


def test_nothing_is_sent_unless_configured(spark: SparkSession, suite_config: SuiteConfig, aws: AwsService) -> None:
    # A held batch with a failing error rule: what would send both the metrics and an alert, were they configured.
    frame = spark.createDataFrame([("a", 1), ("b", None)], "id STRING, qty INT")
    table = TableQualityConfig(
        rules=[RuleConfig(name="qty_known", type="completeness", column="qty", severity="error")]
    )
    evaluation = evaluate(frame, "silver/orders", table, 0.9, "run", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert evaluation.held
    guard = SinkGuard(suite_config.sinks, Origin("run", "test"))
    # The endpoint records every request it is sent while these run; a call would reach it, and succeed.
    recorded(aws, "reset")
    recorded(aws, "start")
    try:
        alerts.announce(AlertsConfig(local_endpoint=True), suite_config.services, evaluation, guard)
        unconfigured = recorded(aws, "download")
        alerts.announce(
            AlertsConfig(cloudwatch_namespace="Unconfigured", local_endpoint=True),
            suite_config.services,
            evaluation,
            guard,
        )
        configured = recorded(aws, "download")
    finally:
        recorded(aws, "stop")
        recorded(aws, "reset")
    assert guard.failures == []
    assert unconfigured == b""
    # The recording does see the suite's calls: with a namespace, the metrics went out (and no alert: no topic).
    assert b"PutMetricData" in configured
    assert b"Publish" not in configured
