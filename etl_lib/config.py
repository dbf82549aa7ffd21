"""Typed, frozen, validated configuration loaded from ``conf/<environment>.yaml``.

A file is read, ``--set KEY=VALUE`` overrides are applied to it, and the result is validated into
:class:`SuiteConfig` before any Spark session exists. Every problem is reported in one
:class:`~etl_lib.errors.ConfigError` naming the file and the dotted key. Secrets never live in these
files: a section names the environment variable that holds a secret (``password_env``), and
:func:`redacted` hides anything secret-looking before config is logged or written to an audit table.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from etl_lib.errors import ConfigError
from etl_lib.platform.paths import project_root
from etl_lib.platform.secrets import REFERENCE, check_reference, remember, scrub

LAYERS = ("bronze", "silver", "gold", "audit", "mesh")
Layer = Literal["bronze", "silver", "gold", "audit", "mesh"]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


def is_uri(location: str) -> bool:
    """True for ``s3://bucket/x``, ``dbfs:/x``, ``file:/x``; False for plain local paths."""
    return bool(_URI.match(location))


def _absolute_location(value: str) -> str:
    # Relative local paths are taken from the working directory once, at load time, so that Spark,
    # deltalake and DuckDB all see the same absolute path. URIs are left alone.
    if is_uri(value):
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


def _as_utc(value: dt.datetime | None) -> dt.datetime | None:
    # A time written without a zone is UTC, the zone of every time the suite stores.
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


_INTERVAL = re.compile(r"^(\d+) (second|minute|hour|day)s?$")


def interval(text: str) -> dt.timedelta:
    """``"10 minutes"`` as a timedelta (the forms the speed section's durations accept)."""
    match = _INTERVAL.match(text)
    if match is None:
        raise ConfigError(f"{text!r} is not a duration like '10 minutes'")
    return dt.timedelta(**{f"{match.group(2)}s": int(match.group(1))})


def _identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a table identifier (lower case letters, digits, underscores)")
    return value


def _conf_value(value: object) -> object:
    # YAML turns `8` and `true` into int and bool; Spark wants the strings "8" and "true".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


Location = Annotated[str, Field(min_length=1), AfterValidator(_absolute_location)]
ConfValue = Annotated[str, BeforeValidator(_conf_value)]
Identifier = Annotated[str, AfterValidator(_identifier)]
#: Where a secret lives (``env:NAME``, ``aws-secretsmanager:NAME#FIELD``, ...): never the secret itself.
SecretRef = Annotated[str, AfterValidator(check_reference)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AppConfig(_Section):
    """Who is running: the suite's name and the environment this file describes."""

    name: str = "lakehouse-etl-suite"
    environment: str


class LakehouseConfig(_Section):
    """Where the tables live: ``<root>/<layer>/<table>``."""

    root: Location
    checkpoints: Location | None = None

    def table_path(self, layer: str, table: str) -> str:
        """Location of the Delta table ``table`` in ``layer`` (one of :data:`LAYERS`, checked here).

        Raises:
            ConfigError: for a layer the lakehouse does not have.
        """
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
        return f"{self.root}/{layer}/{_identifier(table)}"

    def query_checkpoint(self, query: str) -> str:
        """Checkpoint of a streaming query that writes several tables (the speed layer's)."""
        base = self.checkpoints or f"{self.root}/_checkpoints"
        return f"{base}/queries/{_identifier(query)}"

    def checkpoint_path(self, layer: Layer, table: str, reading: str | None = None) -> str:
        """Streaming checkpoint of the query that writes ``layer/table`` (reading table ``reading``)."""
        base = self.checkpoints or f"{self.root}/_checkpoints"
        path = f"{base}/{layer}/{_identifier(table)}"
        return f"{path}/{reading.replace('/', '.')}" if reading else path


class SparkConfig(_Section):
    """How the SparkSession is obtained.

    ``session: local`` builds a ``local[...]`` session with the suite's jars from the local cache.
    ``session: platform`` takes the session AWS Glue, EMR or Databricks already runs and adds no jars.
    """

    session: Literal["local", "platform"]
    master: str = Field(
        default="local[2]", pattern=r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|local-cluster\[.+\]|spark://\S+|yarn|k8s://\S+)$"
    )
    app_name: str = "etl-suite"
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = "WARN"
    conf: dict[str, ConfValue] = Field(default_factory=dict)
    jvm_cache: Location | None = None


_LOOPBACK = re.compile(r"^(127(\.\d{1,3}){3}|::1|localhost)$")


def is_loopback(host: str) -> bool:
    """True for 127.x.x.x, ::1 and localhost: addresses no other machine can reach."""
    return bool(_LOOPBACK.match(host))


def _loopback(value: str) -> str:
    if not is_loopback(value):
        raise ValueError(f"{value!r} is not a loopback address: the suite's local services listen on 127.0.0.1 only")
    return value


#: The address a local service listens on: loopback only, never reachable from other machines.
LoopbackHost = Annotated[str, AfterValidator(_loopback)]


class KafkaServiceConfig(_Section):
    """The local single-node KRaft broker."""

    host: LoopbackHost = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"


class PostgresServiceConfig(_Section):
    """The local PostgreSQL server playing the operational orders database."""

    host: LoopbackHost = "127.0.0.1"
    port: int = Field(default=5433, ge=1, le=65535)
    database: str = "etl"
    user: str = "etl"
    password_env: str = "ETL_SUITE_PG_PASSWORD"  # noqa: S105 - the name of a variable, not a password

    @property
    def jdbc_url(self) -> str:
        """JDBC URL without credentials."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"


class AwsServiceConfig(_Section):
    """The local AWS-compatible endpoint (S3, Kinesis, Glue, CloudWatch, SNS, ...)."""

    host: LoopbackHost = "127.0.0.1"
    port: int = Field(default=4566, ge=1, le=65535)
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        """Endpoint URL for boto3 clients."""
        return f"http://{self.host}:{self.port}"


class RedisServiceConfig(_Section):
    """The Redis server of the real-time store (the seed's ElastiCache): local, or any reachable one."""

    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    #: The environment variable holding the password; unset or empty: no authentication.
    password_env: str = "ETL_SUITE_REDIS_PASSWORD"  # noqa: S105 - the name of a variable, not a password
    tls: bool = False

    @property
    def url(self) -> str:
        """``redis://host:port/db``, without credentials."""
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


class SparkClusterServiceConfig(_Section):
    """A Spark standalone cluster on loopback: one master and its workers (tests run jobs on it)."""

    host: LoopbackHost = "127.0.0.1"
    port: int = Field(default=7077, ge=1, le=65535)
    webui_port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=2, ge=1)
    worker_cores: int = Field(default=1, ge=1)
    worker_memory: str = Field(default="2g", pattern=r"^[0-9]+[mg]$")

    @property
    def master_url(self) -> str:
        """``spark://host:port``: what ``spark.master`` is set to for a job to run on the cluster."""
        return f"spark://{self.host}:{self.port}"


class ServicesConfig(_Section):
    """Local services started by ``etl-suite services up``; their state lives under ``work_dir``."""

    work_dir: Location = Field(default="./.work/services", validate_default=True)
    start_timeout_seconds: float = Field(default=90.0, gt=0)
    kafka: KafkaServiceConfig = Field(default_factory=KafkaServiceConfig)
    postgres: PostgresServiceConfig = Field(default_factory=PostgresServiceConfig)
    aws: AwsServiceConfig = Field(default_factory=AwsServiceConfig)
    redis: RedisServiceConfig = Field(default_factory=RedisServiceConfig)
    spark: SparkClusterServiceConfig = Field(default_factory=SparkClusterServiceConfig)


_SPARK_TYPE = re.compile(
    r"^(string|boolean|int|bigint|double|date|timestamp|timestamp_ntz|decimal\(\d{1,2},\s*\d{1,2}\))$"
)
_QUALIFIED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _spark_type(value: str) -> str:
    if not _SPARK_TYPE.match(value):
        raise ValueError(
            f"{value!r} is not a supported column type "
            "(string, boolean, int, bigint, double, date, timestamp, timestamp_ntz, decimal(p,s))"
        )
    return value


def _qualified_name(value: str) -> str:
    if not _QUALIFIED.match(value):
        raise ValueError(f"{value!r} is not a table or column name (letters, digits, underscores; schema.table)")
    return value


_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _column_name(value: str) -> str:
    if not _COLUMN.match(value):
        raise ValueError(f"{value!r} is not a column name (letters, digits and underscores, not first a digit)")
    return value


#: A column of a table as rules and keys name it (never an expression).
ColumnName = Annotated[str, AfterValidator(_column_name)]
SparkType = Annotated[str, AfterValidator(_spark_type)]
QualifiedName = Annotated[str, AfterValidator(_qualified_name)]


class EntityConfig(_Section):
    """A silver entity: its columns with their types, and which of them every row must have."""

    columns: dict[Identifier, SparkType]
    required: list[Identifier] = Field(default_factory=list)
    #: Columns required only for some values of another column: {event_type: {purchase: [amount]}}.
    required_when: dict[Identifier, dict[str, list[Identifier]]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _required_are_columns(self) -> EntityConfig:
        named = [*self.required, *self.required_when]
        named += [c for by_value in self.required_when.values() for cs in by_value.values() for c in cs]
        unknown = sorted({name for name in named if name not in self.columns})
        if unknown:
            raise ValueError(f"required names columns that are not declared: {', '.join(unknown)}")
        return self


class _ExtractSource(_Section):
    """What every batch extract declares: its bronze table and how its columns map to a silver entity."""

    table: Identifier
    entity: Identifier | None = None
    #: entity column -> column of the extract
    columns: dict[Identifier, str] = Field(default_factory=dict)
    #: entity column -> datetime pattern, for text dates and timestamps
    formats: dict[Identifier, str] = Field(default_factory=dict)


class FileSourceConfig(_ExtractSource):
    """A landing folder of extract files of one format, ingested into one bronze table."""

    kind: Literal["files"]
    path: Location
    format: Literal["parquet", "csv", "json"]
    options: dict[str, ConfValue] = Field(default_factory=dict)
    max_files_per_batch: int | None = Field(default=None, gt=0)


class JdbcSourceConfig(_ExtractSource):
    """A table of an operational database, extracted incrementally by a high-water mark."""

    kind: Literal["jdbc"]
    url: str = Field(pattern=r"^jdbc:[a-z0-9]+:")
    driver: str = "org.postgresql.Driver"
    user: str
    #: Where the password comes from: this secret reference, else this environment variable, else this file.
    password_secret: SecretRef | None = None
    password_env: str | None = None
    password_file: Location | None = None
    #: Attempts to reach the database before the run fails, waiting ``retry_wait_seconds``, doubled each time.
    connect_attempts: int = Field(default=3, ge=1, le=10)
    retry_wait_seconds: float = Field(default=2.0, ge=0, le=300)
    source_table: QualifiedName
    watermark_column: QualifiedName
    partition_column: QualifiedName | None = None
    num_partitions: int = Field(default=4, ge=1)
    #: Below this many new rows one connection reads them all.
    partition_threshold_rows: int = Field(default=100_000, ge=0)
    fetch_size: int = Field(default=10_000, ge=1)


SourceConfig = Annotated[FileSourceConfig | JdbcSourceConfig, Field(discriminator="kind")]


class Band(_Section):
    """One band of a banding: values below ``below`` (and at least the previous band's bound) get ``name``."""

    name: str
    below: float | None = None


def _check_bands(bands: list[Band]) -> list[Band]:
    bounds = [band.below for band in bands]
    if not bands or bounds[-1] is not None or any(bound is None for bound in bounds[:-1]):
        raise ValueError("every band but the last needs `below`; the last band has none")
    numbers = [bound for bound in bounds[:-1] if bound is not None]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise ValueError("band bounds must increase")
    return bands


Bands = Annotated[list[Band], AfterValidator(_check_bands)]


class Scd2Config(_Section):
    """A Type 2 dimension: business keys, the column that orders changes, the attributes whose history is kept."""

    keys: list[Identifier] = Field(min_length=1)
    sequence_by: Identifier
    tracked: list[Identifier] = Field(min_length=1)
    #: Attributes overwritten in place on every version of the key (Type 1).
    type1: list[Identifier] = Field(default_factory=list)


class BatchConfig(_Section):
    """The batch layer: bronze, silver and gold from the extracts."""

    #: Stock codes matching this are products; the rest are classified by ``non_product_codes``.
    product_code_pattern: str = "^[0-9]{5}"
    #: class -> regular expression on the stock code, tried in order.
    non_product_codes: dict[Identifier, str] = Field(default_factory=dict)
    price_categories: Bands
    customer_segments: Bands
    customers: Scd2Config
    #: How many independent tables one run builds at once.
    max_parallel_tables: int = Field(default=2, ge=1)


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
    #: Larger records go to the dead letters unparsed.
    max_payload_bytes: int = Field(default=1_000_000, gt=0)


RuleType = Literal[
    "completeness", "uniqueness", "validity", "range", "allowed_values", "expression", "row_count", "freshness"
]
_RULE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # rule type: (fields it needs, fields it may have)
    "completeness": ({"column"}, set()),
    "uniqueness": ({"columns"}, set()),
    "validity": ({"column", "pattern"}, set()),
    "range": ({"column"}, {"min", "max"}),
    "allowed_values": ({"column", "values"}, set()),
    "expression": ({"expression"}, {"column"}),
    "row_count": (set(), {"min", "max"}),
    "freshness": ({"column", "max_age"}, set()),
}
_RULE_SPECIFIC = {"column", "columns", "pattern", "min", "max", "values", "expression", "max_age"}


class RuleConfig(_Section):
    """One data-quality rule of a table.

    Row rules (completeness, uniqueness, validity, range, allowed values, expression) judge every row and
    pass for the batch when at least ``threshold`` of its rows pass; dataset rules (row count, freshness)
    judge the batch as a whole. ``action`` says what happens to failing rows: ``warn`` keeps and flags
    them, ``drop`` removes them, ``quarantine`` moves them to ``audit/quarantine`` with their reasons, and
    ``fail`` stops the run when the rule does not pass.
    """

    name: Identifier
    type: RuleType
    column: ColumnName | None = None
    columns: list[ColumnName] | None = None
    pattern: str | None = None
    min: float | str | None = None
    max: float | str | None = None
    values: list[str | int | float] | None = None
    expression: str | None = None
    max_age: str | None = Field(default=None, pattern=r"^\d+ (second|minute|hour|day)s?$")
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)
    severity: Literal["error", "warning", "info"] = "warning"
    action: Literal["warn", "drop", "quarantine", "fail"] = "warn"
    description: str = ""

    @model_validator(mode="after")
    def _fields_fit_the_type(self) -> RuleConfig:
        needed, optional = _RULE_FIELDS[self.type]
        given = {name for name in _RULE_SPECIFIC if getattr(self, name) not in (None, [])}
        missing = sorted(needed - given)
        if missing:
            raise ValueError(f"a {self.type} rule needs {', '.join(missing)}")
        extra = sorted(given - needed - optional)
        if extra:
            raise ValueError(f"a {self.type} rule does not use {', '.join(extra)}")
        if self.type == "range" and self.min is None and self.max is None:
            raise ValueError("a range rule needs min, max or both")
        if self.type in ("row_count", "freshness") and self.action in ("drop", "quarantine"):
            raise ValueError(f"a {self.type} rule judges the whole batch: its action is warn or fail")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as error:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {error}") from None
        return self

    @property
    def is_row_rule(self) -> bool:
        """True for rules that judge each row."""
        return self.type not in ("row_count", "freshness")

    @property
    def target_columns(self) -> list[str]:
        """The columns the rule looks at (for messages and results)."""
        if self.columns:
            return list(self.columns)
        return [self.column] if self.column else []


class TableQualityConfig(_Section):
    """The rules of one table, and how its rows are named in samples and replays."""

    #: Columns naming a row (samples in the results; the row a quarantine replay merges on).
    key: list[ColumnName] = Field(default_factory=list)
    #: Below this score (the share of rules that pass) a batch is held back whole; default quality.score_threshold.
    score_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    rules: list[RuleConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _rule_names_are_unique(self) -> TableQualityConfig:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"rule names must be unique within a table: {', '.join(twice)}")
        return self


class AlertsConfig(_Section):
    """Metrics and alerts like the seed's: CloudWatch metric data and SNS notifications (off by default)."""

    cloudwatch_namespace: str | None = None
    sns_topic_arn: str | None = None
    #: Send them to the local AWS endpoint of ``services.aws`` instead of AWS.
    local_endpoint: bool = False
    region: str | None = None


class QualityConfig(_Section):
    """Data-quality rules per table (``layer/table``), the gate, and where results are announced."""

    score_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    tables: dict[str, TableQualityConfig] = Field(default_factory=dict)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _tables_are_layer_slash_name(self) -> QualityConfig:
        for name, table in self.tables.items():
            layer, _, table_name = name.partition("/")
            if layer not in LAYERS or not _IDENTIFIER.match(table_name):
                raise ValueError(f"{name!r} is not <layer>/<table> with a layer of {', '.join(LAYERS)}")
            if layer == "bronze" and any(rule.action in ("drop", "quarantine") for rule in table.rules):
                raise ValueError(f"{name}: bronze keeps every landed row; its rules can only warn or fail")
        return self

    def rules_of(self, layer: str, table: str) -> TableQualityConfig | None:
        """The rules of ``layer/table``, if it has any."""
        return self.tables.get(f"{layer}/{table}")

    def threshold_of(self, table: TableQualityConfig) -> float:
        """The score below which a batch of ``table`` is held back."""
        return self.score_threshold if table.score_threshold is None else table.score_threshold


class OpenLineageConfig(_Section):
    """Where OpenLineage run events go: a JSON-lines file (default), an HTTP endpoint, or nowhere."""

    transport: Literal["file", "http", "none"] = "file"
    #: Empty: ``<lakehouse.root>/_lineage/openlineage.jsonl``.
    path: Location | None = None
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key_env: str | None = None
    api_key_secret: SecretRef | None = None
    namespace: str = "lakehouse-etl-suite"


class LineageConfig(_Section):
    """Lineage: the audit tables are always written; OpenLineage events go where this says."""

    openlineage: OpenLineageConfig = Field(default_factory=OpenLineageConfig)


class AnomalyConfig(_Section):
    """The Isolation Forest that checks purchases."""

    model_name: str = "purchase_anomaly"
    #: Columns of an order line (or purchase event) the model sees.
    features: list[Identifier] = Field(default_factory=lambda: ["quantity", "unit_price", "amount"])
    trees: int = Field(default=100, ge=1)
    sample_size: int = Field(default=256, ge=2)
    contamination: float = Field(default=0.005, gt=0, lt=0.5)
    random_state: int = 42
    #: Rows sampled to the driver for training (about this many, chosen by a hash of ``line_id`` seeded with
    #: ``random_state``: the same rows whatever the table's file layout).
    training_rows: int = Field(default=200_000, ge=1000)
    #: Score order lines as the batch layer writes them, and purchases as the speed layer does.
    in_batch_layer: bool = True
    in_speed_layer: bool = True


class ChurnConfig(_Section):
    """The churn models: Online Retail customers, and the Telco data set."""

    model_name: str = "customer_churn"
    telco_model_name: str = "telco_churn"
    telco_path: Location = Field(
        default="./data/telco_churn/WA_Fn-UseC_-Telco-Customer-Churn.csv", validate_default=True
    )
    #: An Online Retail customer has churned who buys nothing in the last this-many days of the data.
    inactive_days: int = Field(default=90, ge=1)
    features: list[Identifier] = Field(
        default_factory=lambda: [
            "recency_days", "frequency", "monetary", "tenure_days", "avg_monthly_spend", "return_rate", "total_spend",
        ]
    )  # fmt: skip
    folds: int = Field(default=5, ge=2)
    risk_bands: Bands = Field(
        default_factory=lambda: [Band(name="Low", below=0.3), Band(name="Medium", below=0.7), Band(name="High")]
    )
    #: The seed's lifetime value: monthly spend / churn probability * 12, capped here.
    ltv_cap: float = Field(default=10_000.0, gt=0)
    #: High-risk customers are also announced on this SNS topic (with ``quality.alerts.local_endpoint``).
    campaign_sns_topic_arn: str | None = None


class MlConfig(_Section):
    """Models: tracked and versioned in MLflow, the one under ``alias`` used for scoring."""

    #: Empty: a SQLite store under ``work_dir`` (artifacts beside it).
    tracking_uri: str | None = None
    work_dir: Location = Field(default="./.work/mlflow", validate_default=True)
    experiment: str = "lakehouse-etl-suite"
    alias: str = "champion"
    #: Point the alias at each newly trained version (off: promote by hand, after review).
    promote_new_models: bool = True
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)


class RealtimeStoreConfig(_Section):
    """Latest per-customer metrics the speed layer keeps in Redis (``services.redis``) for lookups."""

    enabled: bool = False
    key_prefix: str = Field(default="etl-suite:customer:", min_length=1)
    #: Commands sent per pipelined round trip.
    pipeline_size: int = Field(default=500, gt=0)
    #: Keys expire this long after their last update (none: they stay).
    ttl_seconds: int | None = Field(default=None, gt=0)


class ServingConfig(_Section):
    """The lambda serving layer: views joining the batch and speed results, and their reconciliation."""

    #: Where batch results end and speed results begin (ISO time). Empty: the batch layer's high-water mark
    #: (the newest line in silver/order_lines), floored to the speed layer's window.
    cutoff: dt.datetime | None = None
    #: A speed value within this distance of the batch value is a match.
    tolerance: float = Field(default=0.0, ge=0)
    #: Rewrite the speed windows that drift from the batch recomputation (recorded in lineage).
    correct_drift: bool = False
    realtime_store: RealtimeStoreConfig = Field(default_factory=RealtimeStoreConfig)


Permission = Literal["read", "describe"]


class ProductConfig(_Section):
    """A data product of a domain: a published copy of a lakehouse table, with its contract."""

    #: The table it publishes, as ``layer/name``.
    source: str = Field(pattern=r"^(bronze|silver|gold|audit|mesh)/[a-z][a-z0-9_]*$")
    description: str = ""
    #: The columns published (all when empty).
    columns: list[str] = Field(default_factory=list)
    #: The column whose newest value says how fresh the product is, and how old that may be.
    freshness_column: str | None = None
    max_age: str | None = Field(default=None, pattern=r"^\d+ (second|minute|hour|day)s?$")
    version: str = "1.0.0"


class DomainConfig(_Section):
    """A domain of the data mesh: who owns it, where its products live, who may read them."""

    owner: str = Field(min_length=1)
    description: str = ""
    #: Where the domain's product tables live; empty: ``<lakehouse.root>/mesh``.
    location: Location | None = None
    #: Consumer (team) name: what it may do with every product of the domain.
    consumers: dict[str, list[Permission]] = Field(default_factory=dict)
    products: dict[Identifier, ProductConfig] = Field(default_factory=dict)


class GlueCatalogConfig(_Section):
    """Registration in the AWS Glue Data Catalog and Lake Formation grants (off by default)."""

    enabled: bool = False
    #: Glue database of a domain: this prefix and the domain's name.
    database_prefix: str = ""
    lake_formation: bool = False
    #: Consumer name: its IAM principal (role or user ARN), to which Lake Formation grants are made.
    principals: dict[str, str] = Field(default_factory=dict)
    #: Talk to the local AWS endpoint of ``services.aws`` instead of AWS.
    local_endpoint: bool = False
    region: str | None = None


class MeshConfig(_Section):
    """The data mesh: domains and their products, and the catalogs they are registered in."""

    domains: dict[Identifier, DomainConfig] = Field(default_factory=dict)
    glue: GlueCatalogConfig = Field(default_factory=GlueCatalogConfig)
    #: How many products one run publishes at once.
    max_parallel_products: int = Field(default=4, ge=1)


class GlueDeployConfig(_Section):
    """AWS Glue job definitions (``CreateJob`` input) for every job."""

    role_arn: str = "arn:aws:iam::123456789012:role/etl-suite-glue"
    worker_type: str = "G.1X"
    number_of_workers: int = Field(default=2, ge=2)
    timeout_minutes: int = Field(default=120, ge=1)
    #: The suite's configuration on Glue: a file of ``conf/`` (shipped with ``--extra-files``).
    conf: str = "conf/glue.yaml"
    #: Each job's name on Glue: this prefix and the job's name.
    job_prefix: str = "etl-suite-"


class EmrDeployConfig(_Section):
    """EMR on EC2 steps and EMR Serverless job runs (spark-submit arguments) for every job."""

    release_label: str = "emr-7.12.0"
    conf: str = "conf/emr.yaml"
    #: EMR Serverless: the application and the role its runs assume.
    application_id: str = "00etlsuiteapp"
    execution_role_arn: str = "arn:aws:iam::123456789012:role/etl-suite-emr-serverless"


class DatabricksDeployConfig(_Section):
    """A Databricks asset bundle: one job per suite job, each a notebook task on a job cluster."""

    conf: str = "conf/databricks.yaml"
    spark_version: str = "16.4.x-scala2.12"
    node_type_id: str = "m5d.large"
    num_workers: int = Field(default=1, ge=0)


class DeployConfig(_Section):
    """Where ``make package`` puts the suite for the platforms, and how their job definitions look."""

    #: Where the package's files are uploaded (the descriptors point there): ``s3://bucket/prefix``.
    artifacts_uri: str = Field(default="s3://etl-suite-artifacts/lakehouse-etl-suite", pattern=r"^s3://[^/]+(/.*)?$")
    glue: GlueDeployConfig = Field(default_factory=GlueDeployConfig)
    emr: EmrDeployConfig = Field(default_factory=EmrDeployConfig)
    databricks: DatabricksDeployConfig = Field(default_factory=DatabricksDeployConfig)


class SecretsConfig(_Section):
    """Where ``aws-secretsmanager:`` secret references are looked up."""

    aws_region: str | None = None
    #: Ask the local AWS endpoint of ``services.aws`` instead of AWS.
    aws_local_endpoint: bool = False


PiiTreatment = Literal["hash", "mask"]


class PrivacyConfig(_Section):
    """Personal data in silver: columns of an entity replaced by a keyed hash or masked.

    ``hash`` gives HMAC-SHA256 of the value under the key ``hash_key_secret`` names, as 64 hex characters: equal
    values still join and count alike, and nobody without the key can test a guess. ``mask`` keeps the last four
    characters and stars the rest (values of four characters or fewer are starred whole). Bronze keeps what it
    landed, as it always does, so access to bronze is what a deployment restricts.
    """

    #: entity -> column -> hash | mask; only text columns.
    pii: dict[Identifier, dict[Identifier, PiiTreatment]] = Field(default_factory=dict)
    #: The key of the keyed hash (a secret reference); needed as soon as a column is hashed.
    hash_key_secret: SecretRef | None = None


class SinksConfig(_Section):
    """How calls to monitoring and alerting sinks are retried before they are given up.

    The sinks are CloudWatch and SNS (``quality.alerts``, ``ml.churn.campaign_sns_topic_arn``), the OpenLineage
    HTTP endpoint (``lineage.openlineage``) and the real-time store (``serving.realtime_store``). None of them
    is the data: a call that still fails after ``attempts`` is given up with one warning line and a row of
    ``audit/sink_failures``, and the run goes on. botocore and redis-py retry with their own exponential
    backoff and jitter, configured from here; the OpenLineage client's HTTP transport takes one timeout,
    ``read_timeout_seconds``. With the defaults a call that is given up has blocked under a second when the
    endpoint refuses connections, some 2 s when nothing answers them, some 3 s when it accepts and never replies.
    """

    #: Calls in all, the first one included (1: no retry).
    attempts: int = Field(default=3, ge=1, le=10)
    #: The first wait between calls; each further wait may double, up to ``max_backoff_seconds``, and is
    #: drawn uniformly below that bound (full jitter) so that many callers do not retry in step.
    first_backoff_seconds: float = Field(default=0.1, gt=0)
    max_backoff_seconds: float = Field(default=0.5, gt=0)
    connect_timeout_seconds: float = Field(default=0.5, gt=0)
    read_timeout_seconds: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _backoff_bounds_are_ordered(self) -> SinksConfig:
        if self.max_backoff_seconds < self.first_backoff_seconds:
            raise ValueError(
                f"max_backoff_seconds ({self.max_backoff_seconds}) is below first_backoff_seconds "
                f"({self.first_backoff_seconds})"
            )
        return self


class RunConfig(_Section):
    """Per-run settings, usually given on the command line (``--process-date``, ``--available-now``)."""

    process_date: dt.date | None = None
    available_now: bool = False
    #: The table a table-level job works on (``quality replay``), as ``layer/name``.
    table: str | None = Field(default=None, pattern=r"^(bronze|silver|gold|audit|mesh)/[a-z][a-z0-9_]*$")
    #: A job that runs alone (the batch layer, file ingestion) waits this long for another run of it to end,
    #: then fails with exit code 75; 0 fails at once.
    lock_wait_seconds: float = Field(default=0.0, ge=0)
    #: A run renews its lock every third of this; a lock not renewed for this long is free again (a run that
    #: died on another machine). On this machine a dead holder's lock is free at once.
    lock_lease_seconds: float = Field(default=300.0, ge=3)


class SuiteConfig(_Section):
    """The whole configuration of one environment."""

    app: AppConfig
    lakehouse: LakehouseConfig
    spark: SparkConfig
    services: ServicesConfig = Field(default_factory=lambda: ServicesConfig.model_validate({}))
    sources: dict[Identifier, SourceConfig] = Field(default_factory=dict)
    entities: dict[Identifier, EntityConfig] = Field(default_factory=dict)
    batch: BatchConfig | None = None
    speed: SpeedConfig = Field(default_factory=SpeedConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    ml: MlConfig = Field(default_factory=MlConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)

    #: The file this configuration was read from (not part of the YAML).
    source_file: str = Field(default="<memory>", exclude=True)

    @model_validator(mode="after")
    def _sources_map_their_entity(self) -> SuiteConfig:
        for name, source in self.sources.items():
            if source.entity is None:
                continue
            entity = self.entities.get(source.entity)
            if entity is None:
                raise ValueError(f"sources.{name}.entity: no entity {source.entity!r} under entities")
            missing = sorted(set(entity.columns) - set(source.columns))
            extra = sorted(set(source.columns) - set(entity.columns))
            if missing or extra:
                raise ValueError(
                    f"sources.{name}.columns: must map every column of entity {source.entity!r}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; not in the entity {', '.join(extra)}" if extra else "")
                )
        for entity_name, treatments in self.privacy.pii.items():
            entity = self.entities.get(entity_name)
            if entity is None:
                raise ValueError(f"privacy.pii.{entity_name}: no entity {entity_name!r} under entities")
            for column in treatments:
                if entity.columns.get(column) != "string":
                    raise ValueError(
                        f"privacy.pii.{entity_name}.{column}: only text columns of the entity can be hashed or masked"
                    )
            if entity_name == "events" and "event_id" in treatments:
                raise ValueError("privacy.pii.events.event_id: the stream deduplicates by event_id; it is no PII")
        if self.privacy.hash_key_secret is None and any(self.privacy.pii.values()):
            # Besides hashed columns, the key makes the row digests (line ids, payload digests) keyed.
            raise ValueError("privacy.hash_key_secret: personal columns need the key's secret reference")
        tables = [source.table for source in self.sources.values()]
        duplicates = sorted({table for table in tables if tables.count(table) > 1})
        if duplicates:
            raise ValueError(f"sources: two sources land in the same bronze table {', '.join(duplicates)}")
        return self

    def sources_of(self, entity: str) -> dict[str, FileSourceConfig | JdbcSourceConfig]:
        """The sources that feed ``entity``, by name."""
        return {name: source for name, source in self.sources.items() if source.entity == entity}


def default_config_path() -> Path:
    """``conf/local.yaml`` of the checkout, else the copy packaged with the library."""
    root = project_root()
    if root is not None:
        return root / "conf" / "local.yaml"
    packaged = resources.files("etl_lib").joinpath("_conf", "local.yaml")
    return Path(str(packaged))


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X``, ``X | None``, ``Annotated[X | Y, ...]``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        candidates = list(typing.get_args(annotation))
    else:
        candidates = [annotation]
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def override_path(dotted: str) -> list[str]:
    """Split a dotted ``--set`` key into the path of mapping keys it addresses.

    Keys of free-form maps may contain dots themselves (``spark.conf.spark.sql.shuffle.partitions``):
    once the path enters such a map, the rest of the key is one map key. Maps of sections
    (``sources.<name>``) take one segment and go on inside the section.
    """
    parts = dotted.split(".")
    path: list[str] = []
    models: list[type[BaseModel]] = [SuiteConfig]
    index = 0
    while index < len(parts):
        part = parts[index]
        path.append(part)
        index += 1
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if not fields:
            models = []
            continue
        annotation = fields[0].annotation
        if typing.get_origin(annotation) is dict:
            value_models = _models_of(typing.get_args(annotation)[1])
            if not value_models:
                if index < len(parts):
                    path.append(".".join(parts[index:]))
                break
            if index < len(parts):
                path.append(parts[index])
                index += 1
            models = value_models
        else:
            models = _models_of(annotation)
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and YAML-typed value.

    Raises:
        ConfigError: if ``text`` is not ``KEY=VALUE`` with a dotted key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. lakehouse.root=/tmp/lake")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {error}") from None
    except ValueError:
        # YAML took it for a date or time that does not exist (2011-13-45): the text goes to validation as it is.
        value = raw.strip()
    return override_path(key), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with every ``KEY=VALUE`` override applied (later ones win)."""
    result = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {text!r}: {prefix} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        # A union member's name in the location (`sources.x.jdbc.url`) says nothing the key does not.
        parts = [str(part) for part in item["loc"] if part not in ("files", "jdbc")]
        key = ".".join(parts)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling, or remove it)"
        elif item["type"] == "union_tag_not_found":
            message = "required key `kind` is missing (files or jdbc)"
        elif item["type"] == "union_tag_invalid":
            message = f"kind: {item['ctx']['tag']!r} is not one of {item['ctx']['expected_tags']}"
        lines.append(f"  {key}: {message}" if key else f"  {message}")
    return "\n".join(lines)


def validate_config(data: Mapping[str, Any], source: str = "<memory>") -> SuiteConfig:
    """Validate an already-parsed mapping into a :class:`SuiteConfig`.

    Raises:
        ConfigError: naming ``source`` and every invalid key.
    """
    written = _secrets_written_in(data)
    if written:
        raise ConfigError(
            f"{source}: secrets are never written in configuration, found one under {', '.join(written)}; "
            "name where it lives instead (password_secret: env:NAME | aws-secretsmanager:NAME | "
            "databricks:SCOPE/KEY, or the environment variable in *_env)"
        )
    try:
        config = SuiteConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None
    return config.model_copy(update={"source_file": source})


def _read_mapping(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read configuration: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None
    except ValueError as error:
        # A date or time that does not exist (2011-13-45) fails while YAML builds it.
        raise ConfigError(f"{file}: not valid YAML: a date or time that does not exist ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: mappings merge key by key, anything else is replaced.

    ``null`` over an inherited mapping removes it (``sources: {online_retail: null}`` drops that source).
    """
    merged = _deep_copy(base)
    for key, value in override.items():
        if value is None and isinstance(merged.get(key), Mapping):
            del merged[key]
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value) if isinstance(value, Mapping) else value
    return merged


def _read_with_bases(file: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = file.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(path) for path in (*chain, resolved))
        raise ConfigError(f"{file}: `extends` makes a cycle: {cycle}")
    data = _read_mapping(file)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{file}: extends: expected the path of a configuration file")
    return deep_merge(_read_with_bases(file.parent / base, (*chain, resolved)), data)


def read_layered(file: str | Path) -> dict[str, Any]:
    """A configuration file as data, its ``extends`` chain laid flat (not validated, no overrides)."""
    return _read_with_bases(Path(file))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SuiteConfig:
    """Read, override and validate a configuration file.

    A file may start from another with ``extends: <path relative to it>``; its own keys are laid over
    the other's (mappings merge, values are replaced).

    Args:
        path: YAML file; ``None`` means the embedded default ``conf/local.yaml``.
        overrides: ``KEY=VALUE`` strings, applied in order after the file is read.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: if a file is missing, is not a YAML mapping, or the result fails validation.
    """
    file = Path(path) if path is not None else default_config_path()
    data = _read_with_bases(file)
    return validate_config(apply_overrides(data, overrides), source=str(file))


REDACTED = "***"
#: The last word of a key whose value is a secret itself (``password``, ``session.token``, ``client_secret``).
_SECRET_WORDS = {"password", "passwd", "pwd", "passphrase", "secret", "token", "credential", "credentials",
                 "apikey", "secretkey", "accesskey"}  # fmt: skip
#: Words before a final ``key`` that make it a secret (``fs.s3a.secret.key``, ``api_key``, Azure's account key).
_KEY_KINDS = {"secret", "access", "api", "private", "account", "encryption", "signing", "client", "master", "shared"}
#: Keys whose value says where a secret lives, never the secret: ``password_env``, ``password_file``.
_POINTER_SUFFIXES = ("_env", "_file")
#: Secrets inside a value: credentials in a URL, ``?password=``, a JAAS ``password="..."``.
_SECRET_IN_TEXT = re.compile(r"://[^:/@\s]+:[^@/\s]+@|[?&;](password|pwd|secret|token|sig)=|\bpassword\s*=\s*\S", re.I)
_WORDS = re.compile(r"[._\-\s]+|(?<=[a-z0-9])(?=[A-Z])")


def names_a_secret(name: str, value: object = None) -> bool:
    """True when configuration key ``name`` holds a secret itself (not where one lives).

    The key's words are read (``fs.s3a.secret.key``, ``awsSecretAccessKey``, ``sfPassword``): it is a secret when
    its last word is one (password, token, secret, ...), or is ``key`` after secret, access, api, account, ...
    Keys ending in ``_env`` or ``_file``, and ``*_secret`` keys holding a secret reference, only point to one.
    """
    if name.endswith(_POINTER_SUFFIXES):
        return False
    if name.endswith("_secret") and isinstance(value, str) and REFERENCE.match(value):
        return False
    words = [word.lower() for word in _WORDS.split(name) if word]
    if not words:
        return False
    if words[-1] in _SECRET_WORDS:
        return True
    if words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_KINDS:
        return True
    # Azure: fs.azure.account.key.<account host> and fs.azure.sas.<container>.<account host>.
    pairs = list(itertools.pairwise(words))
    return ("account", "key") in pairs or (words[:3] == ["fs", "azure", "sas"] and "provider" not in words)


def _secrets_written_in(data: Any, key: str = "", name: str = "") -> list[str]:
    """Dotted keys of ``data`` holding what looks like a secret (a config file or an override)."""
    if isinstance(data, Mapping):
        found: list[str] = []
        for inner, value in data.items():
            found += _secrets_written_in(value, f"{key}.{inner}" if key else str(inner), str(inner))
        return found
    if isinstance(data, list | tuple):
        return [hit for i, item in enumerate(data) for hit in _secrets_written_in(item, f"{key}[{i}]", name)]
    if data in (None, "") or isinstance(data, bool):
        return []
    if names_a_secret(name, data):
        return [key]
    if isinstance(data, str) and _SECRET_IN_TEXT.search(data):
        return [key]
    return []


def redact(value: Any, key: str = "") -> Any:
    """Copy of ``value`` with secret-looking entries replaced by ``***``.

    A key that names where a secret comes from (``password_env``) is kept: it is not the secret.
    Values of the form ``scheme://user:password@host`` lose their password too.
    """
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and value not in (None, "") and names_a_secret(key, value):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    return value


def redacted(config: SuiteConfig) -> dict[str, Any]:
    """The configuration as plain data, safe to log or store."""
    result: dict[str, Any] = redact(config.model_dump(mode="json"))
    return result


def secret_from_env(variable: str) -> str | None:
    """The secret held by environment variable ``variable``, or None when it is unset or empty.

    The value is remembered as a secret, so that logs and audit rows never show it.
    """
    value = os.environ.get(variable)
    return remember(value) if value else None
