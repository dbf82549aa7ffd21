"""Quality metrics to CloudWatch and alerts to SNS, as the seed did; off unless configured."""

from __future__ import annotations

import json
import logging
from typing import Any

from etl_lib.config import AlertsConfig, ServicesConfig
from etl_lib.quality.engine import Evaluation

log = logging.getLogger(__name__)


def _client(alerts: AlertsConfig, services: ServicesConfig, service: str) -> Any:
    import boto3

    if alerts.local_endpoint:
        from etl_lib.services.aws import local_client

        return local_client(services.aws, service)
    return boto3.client(service, region_name=alerts.region)


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


def announce(alerts: AlertsConfig, services: ServicesConfig, evaluation: Evaluation) -> None:
    """Send the metrics and, when warranted, the alert, to wherever ``alerts`` says (nowhere by default)."""
    if alerts.cloudwatch_namespace:
        data = metric_data(evaluation)
        client = _client(alerts, services, "cloudwatch")
        for start in range(0, len(data), 1000):
            client.put_metric_data(Namespace=alerts.cloudwatch_namespace, MetricData=data[start : start + 1000])
    if alerts.sns_topic_arn and needs_alert(evaluation):
        subject, body = alert_message(evaluation)
        _client(alerts, services, "sns").publish(TopicArn=alerts.sns_topic_arn, Subject=subject, Message=body)
        log.warning("quality alert sent for %s", evaluation.table)
