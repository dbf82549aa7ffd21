"""Quality metrics to CloudWatch and alerts to SNS, as the seed did; off unless configured.

Both are monitoring sinks: a call they do not take is retried by botocore as ``sinks`` says, then given up
(:mod:`etl_lib.io.degraded`); the batch being checked goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from etl_lib.config import AlertsConfig, ServicesConfig, SinksConfig
from etl_lib.io import degraded
from etl_lib.io.degraded import SinkGuard
from etl_lib.quality.engine import Evaluation

log = logging.getLogger(__name__)


def aws_client(alerts: AlertsConfig, services: ServicesConfig, service: str, sinks: SinksConfig) -> Any:
    """A boto3 client of ``service`` (cloudwatch, sns) for alerts: AWS, or the local endpoint when so configured.

    Its retries and time-outs are those of ``sinks``.

    Args:
        alerts: the ``quality.alerts`` section (the region, whether to use the local endpoint).
        services: the ``services`` section; its ``aws`` endpoint serves when ``alerts.local_endpoint`` is set.
        service: the boto3 service name: ``cloudwatch`` or ``sns``.
        sinks: the ``sinks`` section: the client's retries and time-outs.
    """
    import boto3

    settings = degraded.botocore_config(sinks)
    if alerts.local_endpoint:
        from etl_lib.io.clients import local_client

        return local_client(services.aws, service, settings)
    return boto3.client(service, region_name=alerts.region, config=settings)


def send_sns(guard: SinkGuard, client: Any, topic_arn: str, subject: str, body: str, sending: str) -> bool:
    """Publish one SNS message through ``guard``; True when SNS took it, False when it was given up.

    Args:
        guard: retries the call and keeps it when it is given up.
        client: a boto3 SNS client (:func:`aws_client`).
        topic_arn: the topic's ARN.
        subject: the message's subject (SNS takes at most 100 characters).
        body: the message.
        sending: what the message is, in words, for the warning line and ``audit/sink_failures``.
    """

    def publish() -> None:
        client.publish(TopicArn=topic_arn, Subject=subject, Message=body)

    return guard.send("sns", sending, publish, degraded.aws_errors(), client_attempts=degraded.RequestCounter(client))


def metric_data(evaluation: Evaluation) -> list[dict[str, Any]]:
    """CloudWatch metric data: the table's score, and failing rows per rule."""
    table = [{"Name": "Table", "Value": evaluation.table}]
    data: list[dict[str, Any]] = [
        {"MetricName": "QualityScore", "Dimensions": table, "Value": evaluation.score, "Unit": "None"},
        {
            "MetricName": "QuarantinedRows",
            "Dimensions": table,
            "Value": float(evaluation.quarantined_rows),
            "Unit": "Count",
        },
    ]
    for result in evaluation.results:
        data.append(
            {
                "MetricName": "FailingRows",
                "Dimensions": [*table, {"Name": "Rule", "Value": result.rule}],
                "Value": float(result.failing_rows),
                "Unit": "Count",
            }
        )
    return data


def needs_alert(evaluation: Evaluation) -> bool:
    """An alert goes out when the batch is held back or an error-severity rule did not pass."""
    return evaluation.held or any(not r.passed and r.severity == "error" for r in evaluation.results)


def alert_message(evaluation: Evaluation) -> tuple[str, str]:
    """Subject and body of the SNS alert."""
    failing = [r for r in evaluation.results if not r.passed]
    body = {
        "table": evaluation.table,
        "score": round(evaluation.score, 4),
        "threshold": evaluation.threshold,
        "held_back": evaluation.held,
        "rows": evaluation.rows,
        "failing_rules": [{"rule": r.rule, "severity": r.severity, "message": r.message} for r in failing[:10]],
    }
    return f"Data quality alert: {evaluation.table}"[:100], json.dumps(body, indent=2)


def announce(alerts: AlertsConfig, services: ServicesConfig, evaluation: Evaluation, guard: SinkGuard) -> None:
    """Send the metrics and, when warranted, the alert, to wherever ``alerts`` says (nowhere by default).

    Never raises because CloudWatch or SNS did not take a call: it is given up in ``guard`` (one warning line;
    the caller records :attr:`SinkGuard.failures`).

    Args:
        alerts: the ``quality.alerts`` section (CloudWatch namespace, SNS topic, region, endpoint).
        services: the ``services`` section, for the local endpoint.
        evaluation: the quality evaluation of one table's batch.
        guard: makes the calls; its settings give the clients' retries and time-outs.
    """
    if alerts.cloudwatch_namespace:
        namespace = alerts.cloudwatch_namespace
        data = metric_data(evaluation)
        client = aws_client(alerts, services, "cloudwatch", guard.settings)

        def put_metrics() -> None:
            for start in range(0, len(data), 1000):
                client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])

        guard.send(
            "cloudwatch",
            f"quality metrics of {evaluation.table} to namespace {namespace}",
            put_metrics,
            degraded.aws_errors(),
            client_attempts=degraded.RequestCounter(client),
            keys=sorted({item["MetricName"] for item in data}),
        )
    if alerts.sns_topic_arn and needs_alert(evaluation):
        subject, body = alert_message(evaluation)
        client = aws_client(alerts, services, "sns", guard.settings)
        if send_sns(guard, client, alerts.sns_topic_arn, subject, body, f"quality alert of {evaluation.table}"):
            log.warning("quality alert sent for %s", evaluation.table)
