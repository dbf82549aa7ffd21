"""``etl-suite produce``: replay the Online Retail purchases as events into the configured stream."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from etl_lib.config import SuiteConfig
from etl_lib.producer.events import encode, malformed_records, retail_events
from etl_lib.producer.sinks import FilesSink, KafkaSink, KinesisSink, Record, Sink

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


@dataclass(frozen=True)
class ProduceReport:
    """What a replay sent."""

    target: str
    events: int
    malformed: int
    seconds: float


def open_sink(config: SuiteConfig, to: str) -> Sink:
    """The sink ``to`` (files, kafka or kinesis) as the speed configuration describes it."""
    speed = config.speed
    if to == "files":
        return FilesSink(speed.files.path)
    if to == "kafka":
        from etl_lib.io.sources.events import kafka_bootstrap

        return KafkaSink(kafka_bootstrap(speed, config.services), speed.kafka.topic, speed.kafka.partitions)
    import boto3

    from etl_lib.config.secrets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
    from etl_lib.io.sources.events import kinesis_endpoint

    endpoint, region = kinesis_endpoint(speed, config.services)
    credentials = (
        {"aws_access_key_id": LOCAL_ACCESS_KEY, "aws_secret_access_key": LOCAL_SECRET_KEY}
        if speed.kinesis.local_endpoint
        else {}
    )
    client = boto3.client("kinesis", endpoint_url=endpoint, region_name=region, **credentials)
    return KinesisSink(client, speed.kinesis.stream, speed.kinesis.shards)


def replay(
    config: SuiteConfig,
    to: str,
    limit: int | None = None,
    rate: float | None = None,
    malformed: int = 0,
    batch_size: int = 1000,
    data: Path = DATA,
) -> ProduceReport:
    """Send up to ``limit`` events (and ``malformed`` bad records spread among them) at most ``rate`` a second.

    Args:
        config: the suite configuration (``speed``, ``services``).
        to: the sink: ``files``, ``kafka`` or ``kinesis``.
        limit: the most events sent; None for every event of the data.
        rate: the most records sent a second, bad ones included; None or 0 for no limit.
        malformed: bad records sent among the events; those left over go at the end.
        batch_size: records handed to the sink at a time.
        data: the Online Retail extract, as Parquet.
    """
    import pyarrow.parquet as pq

    sink = open_sink(config, to)
    events = retail_events(pq.read_table(data))
    if limit is not None:
        events = itertools.islice(events, limit)
    bad = malformed_records(malformed)
    started = time.monotonic()
    sent = bad_sent = 0
    batch: list[Record] = []

    def flush() -> None:
        nonlocal batch
        if batch:
            sink.send(batch)
            batch = []
        if rate:
            ahead = (sent + bad_sent) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    for event in events:
        batch.append((str(event["customer_id"]), encode(event)))
        sent += 1
        if bad_sent < len(bad) and sent % max(1, (limit or 10_000) // max(1, len(bad))) == 0:
            batch.append((f"malformed-{bad_sent}", bad[bad_sent]))
            bad_sent += 1
        if len(batch) >= batch_size:
            flush()
    for record in bad[bad_sent:]:
        batch.append((f"malformed-{bad_sent}", record))
        bad_sent += 1
    flush()
    return ProduceReport(to, sent, bad_sent, round(time.monotonic() - started, 2))
