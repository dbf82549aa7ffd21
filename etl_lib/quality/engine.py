"""Evaluate a table's rules on a DataFrame (a batch or a micro-batch) in a single pass.

Every row rule becomes a boolean column saying whether the row fails it; one aggregation then counts
the failures of all rules at once, with the dataset metrics (row count, newest time) and a few sample
keys, so the data is read once however many rules there are, and only the columns rules use are read
for the metrics. From the counts each rule passes or not; the share of rules that pass is the batch's
score, and a batch scoring below the table's threshold is held back whole. Rows keep the list of rules
they failed in ``_dq_failures``; rows failing a ``drop`` rule are left out, rows failing a ``quarantine``
rule are set aside with their reasons.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl_lib.config import RuleConfig, TableQualityConfig, interval

FAILURES = "_dq_failures"
FAILURE_TYPE = "ARRAY<STRUCT<rule: STRING, column: STRING, message: STRING, run_id: STRING>>"
SAMPLES = 3


@dataclass(frozen=True)
class RuleResult:
    """How one rule fared on one batch."""

    rule: str
    type: str
    columns: list[str]
    severity: str
    action: str
    metric: float | None
    threshold: float | None
    passed: bool
    failing_rows: int
    rows: int
    sample_keys: list[str]
    message: str


@dataclass
class Evaluation:
    """The outcome of a table's rules on one batch.

    ``kept`` is what may be written to the table (with ``_dq_failures``), ``quarantined`` what goes to the
    quarantine (with ``_dq_failures``); both are empty of rows when the batch is ``held`` back, in which
    case every row is in ``held_rows``.
    """

    table: str
    results: list[RuleResult]
    score: float
    threshold: float
    rows: int
    kept: DataFrame
    quarantined: DataFrame
    dropped_rows: int
    quarantined_rows: int
    held: bool
    held_rows: DataFrame
    failed: list[RuleResult] = field(default_factory=list)

    @property
    def summary(self) -> str:
        """One line for logs and errors."""
        passed = sum(result.passed for result in self.results)
        return (
            f"{self.table}: {passed}/{len(self.results)} rules passed, score {self.score:.2f} "
            f"(threshold {self.threshold:.2f}), {self.rows:,} rows, {self.quarantined_rows:,} quarantined, "
            f"{self.dropped_rows:,} dropped" + (", batch held back" if self.held else "")
        )


def _quoted(name: str) -> Column:
    return F.col("`" + name.replace("`", "``") + "`")


def _literal(value: float | str, like: str) -> Column:
    # Dates and timestamps are written as ISO text in YAML; they compare in the column's own type.
    return F.lit(value).cast(like) if isinstance(value, str) else F.lit(value)


def _message(rule: RuleConfig) -> str:
    column = ", ".join(rule.target_columns)
    if rule.type == "completeness":
        return f"{column} is missing"
    if rule.type == "uniqueness":
        return f"repeats another row's {column}"
    if rule.type == "validity":
        return f"{column} does not match {rule.pattern}"
    if rule.type == "range":
        bounds = f"[{'' if rule.min is None else rule.min}, {'' if rule.max is None else rule.max}]"
        return f"{column} is outside {bounds}"
    if rule.type == "allowed_values":
        return f"{column} is not one of {', '.join(str(v) for v in rule.values or [])}"
    return f"fails {rule.expression}"


def _row_failure(rule: RuleConfig, types: dict[str, str], index: int) -> Column:
    """True where a row fails ``rule`` (row rules only)."""
    if rule.type == "uniqueness":
        return F.col(f"__dq_seen_{index}") > 1
    if rule.type == "expression":
        return ~F.coalesce(F.expr(rule.expression or "false"), F.lit(False))
    value = _quoted(rule.column or "")
    if rule.type == "completeness":
        missing = value.isNull()
        if types.get(rule.column or "") == "string":
            missing = missing | (F.trim(value) == "")
        return missing
    if rule.type == "validity":
        return value.isNotNull() & ~value.cast("string").rlike(rule.pattern or "")
    if rule.type == "range":
        kind = types.get(rule.column or "", "double")
        outside = F.lit(False)
        if rule.min is not None:
            outside = outside | (value < _literal(rule.min, kind))
        if rule.max is not None:
            outside = outside | (value > _literal(rule.max, kind))
        return value.isNotNull() & outside
    return value.isNotNull() & ~value.isin(list(rule.values or []))


def flag(frame: DataFrame, table: TableQualityConfig, run_id: str) -> tuple[DataFrame, list[str]]:
    """``frame`` with a boolean failure column per row rule and the ``_dq_failures`` list.

    Returns:
        The flagged frame and the names of the failure columns, in the order of the table's rules.
    """
    types = dict(frame.dtypes)
    flagged = frame
    key_order = [_quoted(k) for k in table.key] or [F.lit(1)]
    for index, rule in enumerate(table.rules):
        if rule.type == "uniqueness":
            seen = Window.partitionBy(*[_quoted(c) for c in rule.columns or []]).orderBy(*key_order)
            flagged = flagged.withColumn(f"__dq_seen_{index}", F.row_number().over(seen))
    columns: list[str] = []
    reasons: list[Column] = []
    for index, rule in enumerate(table.rules):
        if not rule.is_row_rule:
            columns.append("")
            continue
        name = f"__dq_fail_{index}"
        flagged = flagged.withColumn(name, _row_failure(rule, types, index))
        columns.append(name)
        reason = F.struct(
            F.lit(rule.name).alias("rule"),
            F.lit(", ".join(rule.target_columns) or None).cast("string").alias("column"),
            F.lit(_message(rule)).alias("message"),
            F.lit(run_id).alias("run_id"),
        )
        reasons.append(F.when(F.col(name), reason))
    failures = F.filter(F.array(*reasons), lambda r: r.isNotNull()) if reasons else F.array().cast(FAILURE_TYPE)
    return flagged.withColumn(FAILURES, failures.cast(FAILURE_TYPE)), columns


def _sample_key(table: TableQualityConfig) -> Column:
    if not table.key:
        return F.lit(None).cast("string")
    return F.concat_ws("|", *[_quoted(k).cast("string") for k in table.key])


def _metrics(
    flagged: DataFrame, table: TableQualityConfig, columns: list[str], quarantine: Column, drop: Column
) -> dict[str, object]:
    """Every count the rules and actions need, from one aggregation (one Spark job)."""
    key = _sample_key(table)
    aggregates: list[Column] = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(quarantine.cast("bigint")).alias("quarantined"),
        F.sum((drop & ~quarantine).cast("bigint")).alias("dropped"),
    ]
    for index, (rule, name) in enumerate(zip(table.rules, columns, strict=True)):
        if name:
            failing = F.col(name)
            aggregates += [
                F.sum(failing.cast("bigint")).alias(f"f{index}"),
                F.min(F.when(failing, key)).alias(f"s{index}a"),
                F.max(F.when(failing, key)).alias(f"s{index}b"),
            ]
        elif rule.type == "freshness":
            aggregates.append(F.max(_quoted(rule.column or "")).alias(f"m{index}"))
    row = flagged.agg(*aggregates).first()
    return {} if row is None else row.asDict()


def _result(rule: RuleConfig, index: int, metrics: dict[str, object], reference: dt.datetime) -> RuleResult:
    rows = int(metrics.get("rows") or 0)  # type: ignore[call-overload]
    if rule.type == "row_count":
        low_ok = rule.min is None or rows >= float(rule.min)
        high_ok = rule.max is None or rows <= float(rule.max)
        expected = f"[{'' if rule.min is None else rule.min}, {'' if rule.max is None else rule.max}]"
        return RuleResult(
            rule.name, rule.type, [], rule.severity, rule.action, float(rows), None, low_ok and high_ok, 0, rows, [],
            f"{rows} rows, expected {expected}",
        )  # fmt: skip
    if rule.type == "freshness":
        newest = metrics.get(f"m{index}")
        age = (reference - _aware(newest)).total_seconds() if isinstance(newest, dt.datetime) else None
        limit = interval(rule.max_age or "0 seconds").total_seconds()
        fresh = age is not None and age <= limit
        return RuleResult(
            rule.name, rule.type, rule.target_columns, rule.severity, rule.action, age, limit, fresh, 0, rows, [],
            f"newest {rule.column} is {age if age is not None else 'absent'} s old, limit {limit:.0f} s",
        )  # fmt: skip
    failing = int(metrics.get(f"f{index}") or 0)  # type: ignore[call-overload]
    ratio = 1.0 - failing / rows if rows else 1.0
    samples = [str(v) for v in dict.fromkeys((metrics.get(f"s{index}a"), metrics.get(f"s{index}b"))) if v is not None]
    return RuleResult(
        rule.name, rule.type, rule.target_columns, rule.severity, rule.action, ratio, rule.threshold,
        ratio >= rule.threshold, failing, rows, samples[:SAMPLES], f"{failing} of {rows} rows: {_message(rule)}",
    )  # fmt: skip


def _aware(moment: object) -> dt.datetime:
    assert isinstance(moment, dt.datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def evaluate(
    frame: DataFrame,
    name: str,
    table: TableQualityConfig,
    threshold: float,
    run_id: str,
    reference_time: dt.datetime,
) -> Evaluation:
    """Apply ``table``'s rules to ``frame``.

    Args:
        frame: the batch (persist it first if it is expensive: it is read for the metrics and again to write).
        name: ``layer/table``, for results.
        table: the rules and key.
        threshold: the score below which the batch is held back.
        run_id: stamped on each failure of a row.
        reference_time: "now" for freshness rules (the run's time, or the end of its process date).

    Returns:
        The evaluation; nothing has been written.
    """
    flagged, columns = flag(frame, table, run_id)
    by_action: dict[str, list[str]] = {"quarantine": [], "drop": []}
    for rule, column in zip(table.rules, columns, strict=True):
        if column and rule.action in by_action:
            by_action[rule.action].append(column)
    quarantine, drop = _any(by_action["quarantine"]), _any(by_action["drop"])
    metrics = _metrics(flagged, table, columns, quarantine, drop)
    results = [_result(rule, i, metrics, reference_time) for i, rule in enumerate(table.rules)]
    rows = int(metrics.get("rows") or 0)  # type: ignore[call-overload]
    score = sum(r.passed for r in results) / len(results) if results else 1.0
    held = score < threshold
    helper = [c for c in flagged.columns if c.startswith("__dq_")]
    everything = flagged.drop(*helper)
    kept = flagged.where(~(quarantine | drop)).drop(*helper)
    quarantined = flagged.where(quarantine).drop(*helper)
    return Evaluation(
        table=name,
        results=results,
        score=score,
        threshold=threshold,
        rows=rows,
        kept=kept.limit(0) if held else kept,
        quarantined=quarantined.limit(0) if held else quarantined,
        dropped_rows=0 if held else int(metrics.get("dropped") or 0),  # type: ignore[call-overload]
        quarantined_rows=rows if held else int(metrics.get("quarantined") or 0),  # type: ignore[call-overload]
        held=held,
        held_rows=everything if held else everything.limit(0),
        failed=[r for r in results if not r.passed and r.action == "fail"],
    )


def _any(columns: Sequence[str]) -> Column:
    if not columns:
        return F.lit(False)
    result = F.col(columns[0])
    for name in columns[1:]:
        result = result | F.col(name)
    return result
