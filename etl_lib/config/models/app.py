"""The run's own sections: the application, the lakehouse, Spark, the sinks, the run."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from etl_lib.config.types import LAYERS, ConfValue, Layer, Location, _identifier, _Section
from etl_lib.errors import ConfigError


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
        """Streaming checkpoint of the query that writes ``layer/table`` (reading table ``reading``).

        Args:
            layer: the layer of the table the query writes.
            table: the table the query writes.
            reading: the table the query reads, as ``<layer>/<table>`` (``bronze/orders``), when several queries
                write the same table; None for the table's only query.
        """
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
