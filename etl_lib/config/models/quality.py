"""Data quality: rules per table, and the alerts a failure sends."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from etl_lib.config.types import _IDENTIFIER, LAYERS, ColumnName, Identifier, _Section

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
