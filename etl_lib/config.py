"""Typed, frozen, validated configuration loaded from ``conf/<environment>.yaml``.

A file is read, ``--set KEY=VALUE`` overrides are applied to it, and the result is validated into
:class:`SuiteConfig` before any Spark session exists. Every problem is reported in one
:class:`~etl_lib.errors.ConfigError` naming the file and the dotted key. Secrets never live in these
files: a section names the environment variable that holds a secret (``password_env``), and
:func:`redacted` hides anything secret-looking before config is logged or written to an audit table.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from etl_lib.errors import ConfigError
from etl_lib.platform.paths import project_root

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

    def table_path(self, layer: Layer, table: str) -> str:
        """Location of the Delta table ``table`` in ``layer``."""
        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
        return f"{self.root}/{layer}/{_identifier(table)}"

    def checkpoint_path(self, layer: Layer, table: str) -> str:
        """Streaming checkpoint of the query that writes ``layer/table``."""
        base = self.checkpoints or f"{self.root}/_checkpoints"
        return f"{base}/{layer}/{_identifier(table)}"


class SparkConfig(_Section):
    """How the SparkSession is obtained.

    ``session: local`` builds a ``local[...]`` session with the suite's jars from the local cache.
    ``session: platform`` takes the session AWS Glue, EMR or Databricks already runs and adds no jars.
    """

    session: Literal["local", "platform"]
    master: str = "local[2]"
    app_name: str = "etl-suite"
    log_level: Literal["ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"] = "WARN"
    conf: dict[str, ConfValue] = Field(default_factory=dict)
    jvm_cache: Location | None = None


class KafkaServiceConfig(_Section):
    """The local single-node KRaft broker."""

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=1, le=65535)
    controller_port: int = Field(default=9093, ge=1, le=65535)
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"


class PostgresServiceConfig(_Section):
    """The local PostgreSQL server playing the operational orders database."""

    host: str = "127.0.0.1"
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

    host: str = "127.0.0.1"
    port: int = Field(default=4566, ge=1, le=65535)
    region: str = "us-east-1"

    @property
    def endpoint_url(self) -> str:
        """Endpoint URL for boto3 clients."""
        return f"http://{self.host}:{self.port}"


class ServicesConfig(_Section):
    """Local services started by ``etl-suite services up``; their state lives under ``work_dir``."""

    work_dir: Location = Field(default="./.work/services", validate_default=True)
    start_timeout_seconds: float = Field(default=90.0, gt=0)
    kafka: KafkaServiceConfig = Field(default_factory=KafkaServiceConfig)
    postgres: PostgresServiceConfig = Field(default_factory=PostgresServiceConfig)
    aws: AwsServiceConfig = Field(default_factory=AwsServiceConfig)


class FileSourceConfig(_Section):
    """A landing folder of extract files of one format, ingested into one bronze table."""

    kind: Literal["files"] = "files"
    path: Location
    format: Literal["parquet", "csv", "json"]
    table: Identifier
    options: dict[str, ConfValue] = Field(default_factory=dict)
    max_files_per_batch: int | None = Field(default=None, gt=0)


class RunConfig(_Section):
    """Per-run settings, usually given on the command line (``--process-date``)."""

    process_date: dt.date | None = None


class SuiteConfig(_Section):
    """The whole configuration of one environment."""

    app: AppConfig
    lakehouse: LakehouseConfig
    spark: SparkConfig
    services: ServicesConfig = Field(default_factory=lambda: ServicesConfig.model_validate({}))
    sources: dict[Identifier, FileSourceConfig] = Field(default_factory=dict)
    run: RunConfig = Field(default_factory=RunConfig)

    #: The file this configuration was read from (not part of the YAML).
    source_file: str = Field(default="<memory>", exclude=True)


def default_config_path() -> Path:
    """``conf/local.yaml`` of the checkout, else the copy packaged with the library."""
    root = project_root()
    if root is not None:
        return root / "conf" / "local.yaml"
    packaged = resources.files("etl_lib").joinpath("_conf", "local.yaml")
    return Path(str(packaged))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (``X``, ``X | None``), else None."""
    candidates = [annotation, *typing.get_args(annotation)] if isinstance(annotation, types.UnionType) else [annotation]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def override_path(dotted: str) -> list[str]:
    """Split a dotted ``--set`` key into the path of mapping keys it addresses.

    Keys of free-form maps may contain dots themselves (``spark.conf.spark.sql.shuffle.partitions``):
    once the path enters such a map, the rest of the key is one map key. Maps of sections
    (``sources.<name>``) take one segment and go on inside the section.
    """
    parts = dotted.split(".")
    path: list[str] = []
    model: type[BaseModel] | None = SuiteConfig
    index = 0
    while index < len(parts):
        part = parts[index]
        path.append(part)
        index += 1
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            model = None
            continue
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            value_model = _model_of(typing.get_args(annotation)[1])
            if value_model is None:
                if index < len(parts):
                    path.append(".".join(parts[index:]))
                break
            if index < len(parts):
                path.append(parts[index])
                index += 1
            model = value_model
        else:
            model = _model_of(annotation)
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
        key = ".".join(str(part) for part in item["loc"]) or "<top level>"
        message = item["msg"]
        if item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling, or remove it)"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def validate_config(data: Mapping[str, Any], source: str = "<memory>") -> SuiteConfig:
    """Validate an already-parsed mapping into a :class:`SuiteConfig`.

    Raises:
        ConfigError: naming ``source`` and every invalid key.
    """
    try:
        config = SuiteConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None
    return config.model_copy(update={"source_file": source})


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SuiteConfig:
    """Read, override and validate a configuration file.

    Args:
        path: YAML file; ``None`` means the embedded default ``conf/local.yaml``.
        overrides: ``KEY=VALUE`` strings, applied in order after the file is read.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: if the file is missing, is not a YAML mapping, or fails validation.
    """
    file = Path(path) if path is not None else default_config_path()
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
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, found {type(data).__name__}")
    return validate_config(apply_overrides(data, overrides), source=str(file))


_SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|private_key|access_key|api_key)", re.I)
REDACTED = "***"


def redact(value: Any, key: str = "") -> Any:
    """Copy of ``value`` with secret-looking entries replaced by ``***``.

    A key that names where a secret comes from (``password_env``) is kept: it is not the secret.
    Values of the form ``scheme://user:password@host`` lose their password too.
    """
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and _SECRET_KEY.search(key) and not key.endswith("_env") and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", rf"\1{REDACTED}@", value)
    return value


def redacted(config: SuiteConfig) -> dict[str, Any]:
    """The configuration as plain data, safe to log or store."""
    result: dict[str, Any] = redact(config.model_dump(mode="json"))
    return result


def secret_from_env(variable: str) -> str | None:
    """The secret held by environment variable ``variable``, or None when it is unset or empty."""
    value = os.environ.get(variable)
    return value or None
