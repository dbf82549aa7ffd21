"""Operational extracts: files and JDBC tables, and the entities they hold."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from etl_lib.config.types import (
    ColumnName,
    ConfValue,
    Identifier,
    Location,
    QualifiedName,
    SecretRef,
    SparkType,
    _Section,
)


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
    format: Literal["parquet", "csv", "json", "xlsx"]
    #: Spark's reader options of the format (``sep``, ``encoding``, ``quote`` for CSV); none for ``xlsx``.
    options: dict[str, ConfValue] = Field(default_factory=dict)
    max_files_per_batch: int | None = Field(default=None, gt=0)
    #: ``xlsx`` only: the sheet to read (None: the first) and the row, counted from 1, that names the columns.
    sheet: str | None = None
    header_row: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _workbook_settings(self) -> FileSourceConfig:
        if self.format == "xlsx":
            if self.options:
                raise ValueError("options are Spark reader options, which an xlsx source does not take")
        elif self.sheet is not None or self.header_row != 1:
            raise ValueError(f"sheet and header_row are for an xlsx source, not {self.format}")
        return self


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
    #: Columns of the source table as the database names them (``"Last Modified"``), each quoted where it is read.
    watermark_column: ColumnName
    partition_column: ColumnName | None = None
    num_partitions: int = Field(default=4, ge=1)
    #: Below this many new rows one connection reads them all.
    partition_threshold_rows: int = Field(default=100_000, ge=0)
    fetch_size: int = Field(default=10_000, ge=1)


SourceConfig = Annotated[FileSourceConfig | JdbcSourceConfig, Field(discriminator="kind")]
