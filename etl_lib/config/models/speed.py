"""The speed layer and its event streams: Kafka, Kinesis, files."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from etl_lib.config.types import Location, _as_utc, _Section


class KafkaStreamConfig(_Section):
    """The Kafka topic the speed layer reads (and the producer writes)."""

    #: Empty: the local broker of ``services.kafka``.
    bootstrap_servers: str | None = None
    topic: str = "customer-events"
    partitions: int = Field(default=2, ge=1)
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    max_offsets_per_trigger: int | None = Field(default=None, gt=0)
    #: Kafka's failOnDataLoss: fail when records were deleted (retention) before they were read.
    fail_on_data_loss: bool = True
    #: The consumer's ``fetch.max.wait.ms``: how long the broker holds a fetch that finds nothing new. Spark's
    #: reader fetches past the last offset of a batch's range, so with Kafka's default (500 ms) each read of a
    #: partition waited half a second for records it does not want (measured: 0.6 s to read one record, 0.1 s
    #: with 10 ms). Consumers poll only while a batch reads, so a short wait costs the broker little.
    fetch_max_wait_ms: int = Field(default=10, ge=0)


class KinesisStreamConfig(_Section):
    """The Kinesis stream the speed layer reads (and the producer writes)."""

    stream: str = "customer-events"
    shards: int = Field(default=2, ge=1)
    #: python: the suite's own Spark source (boto3, any endpoint); databricks: the `kinesis` source of
    #: Databricks runtimes; emr: the `aws-kinesis` connector of EMR releases.
    connector: Literal["python", "databricks", "emr"] = "python"
    #: Empty: AWS itself; the local endpoint of ``services.aws`` when ``local_endpoint`` is true.
    endpoint_url: str | None = None
    local_endpoint: bool = False
    region: str | None = None
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    max_records_per_shard: int = Field(default=10_000, ge=1)


class FileStreamConfig(_Section):
    """A landing folder of JSON-lines event files."""

    path: Location = Field(default="./.work/landing/events", validate_default=True)
    max_files_per_trigger: int | None = Field(default=None, gt=0)


class SpeedConfig(_Section):
    """The speed layer: events from a stream into bronze, silver and the real-time gold views."""

    source: Literal["files", "kafka", "kinesis"] = "files"
    files: FileStreamConfig = Field(default_factory=FileStreamConfig)
    kafka: KafkaStreamConfig = Field(default_factory=KafkaStreamConfig)
    kinesis: KinesisStreamConfig = Field(default_factory=KinesisStreamConfig)
    #: Micro-batch interval of a long-running query (``--available-now`` drains and stops instead).
    trigger_interval: str = Field(default="5 seconds", pattern=r"^\d+ (millisecond|second|minute|hour)s?$")
    #: Micro-batch interval of the query that folds new silver events into the gold views and the outbox. Its
    #: MERGEs cost about the same for one event as for thousands, and share the cores with the ingest query:
    #: a longer interval than the ingest query's keeps silver fresh and folds more events per MERGE.
    views_trigger_interval: str = Field(default="5 seconds", pattern=r"^\d+ (millisecond|second|minute|hour)s?$")
    #: How often the ingest query appends its held rows of ``audit/stream_state`` and ``audit/stream_progress``
    #: (and at the end of a run). Each micro-batch's state rides in its bronze commit's metadata, so a run killed
    #: between two appends loses none: the next run writes the missing rows from there.
    audit_interval: str = Field(default="10 seconds", pattern=r"^\d+ (millisecond|second|minute|hour)s?$")
    #: How far behind the newest event time an event may arrive and still count; later ones are set aside.
    allowed_lateness: str = Field(default="10 minutes", pattern=r"^\d+ (second|minute|hour|day)s?$")
    #: An event stamped further than this past its arrival is refused as coming from the future.
    max_future_skew: str = Field(default="1 hour", pattern=r"^\d+ (second|minute|hour|day)s?$")
    #: Events stamped before this are refused (a clock at zero, a year typed wrong): 1970-01-01 is no event time.
    earliest_event_time: Annotated[dt.datetime | None, AfterValidator(_as_utc)] = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    window: str = Field(default="5 minutes", pattern=r"^\d+ (second|minute|hour|day)s?$")
    #: Event types the gold views aggregate; other types are kept in silver.
    page_view_type: str = "page_view"
    purchase_type: str = "purchase"
    #: After each micro-batch of the views, relay the outbox's pending requests to Step Functions as
    #: ``etl-suite run dispatch_fulfillment`` does (``fulfillment``). The relay never stops the stream: a service
    #: out of reach leaves the requests pending, with a warning and a row of ``audit/sink_failures``.
    dispatch_fulfillment: bool = False
    #: Larger records go to the dead letters unparsed.
    max_payload_bytes: int = Field(default=1_000_000, gt=0)
