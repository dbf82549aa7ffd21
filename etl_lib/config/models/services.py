"""The local services the suite starts on loopback: Kafka, PostgreSQL, the AWS endpoint, Redis, a Spark cluster."""

from __future__ import annotations

from pydantic import Field

from etl_lib.config.types import Location, LoopbackHost, _Section


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
