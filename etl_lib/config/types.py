"""The value types of the configuration: names, locations, intervals, hosts, and the base of every section."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal, TypeGuard

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from etl_lib.config.secrets import check_reference
from etl_lib.errors import ConfigError

LAYERS = ("bronze", "silver", "gold", "audit", "mesh")
Layer = Literal["bronze", "silver", "gold", "audit", "mesh"]


def is_layer(name: str) -> TypeGuard[Layer]:
    """True when ``name`` is one of the lakehouse's :data:`LAYERS`."""
    return name in LAYERS


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


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _column_name(value: str) -> str:
    # Extracts name their columns as their systems export them (`Customer ID`, `Unit Price (£)`, `Qté`): any text is
    # a name, used as a quoted identifier wherever it is read, never pasted into SQL. A blank name or one holding a
    # control character (a line break from a header row read wrongly) is a mistake, not a name.
    if not value.strip() or _CONTROL.search(value):
        raise ValueError(f"{value!r} is not a column name (blank, or holding a control character)")
    return value


#: A column of a table as rules and keys name it, whatever its characters (never an expression).
ColumnName = Annotated[str, AfterValidator(_column_name)]
SparkType = Annotated[str, AfterValidator(_spark_type)]
QualifiedName = Annotated[str, AfterValidator(_qualified_name)]
