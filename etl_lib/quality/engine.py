"""Evaluate a table's rules on a DataFrame (a batch or a micro-batch) in a single pass.

Every row rule becomes a boolean column saying whether the row fails it; one aggregation then counts
the failures of all rules at once, with the dataset metrics (row count, newest time) and a few sample
keys, so the data is read once however many rules there are, and only the columns rules use are read
for the metrics. From the counts each rule passes or not; the share of rules that pass is the batch's
score, and a batch scoring below the table's threshold is held back whole. Rows keep the list of rules
they failed in ``_dq_failures``; rows failing a ``drop`` rule are left out, rows failing a ``quarantine``
rule are set aside with their reasons.

A uniqueness rule fails every row after the first of its value (in key order), which takes ranking the rows of
each value (a window: a sort of the batch). Only the rows written need that: when the rule moves no row (``warn``
or ``fail``), the aggregation counts its failures as the rows less the distinct values, and its sample keys come
from rows read for them, so the check itself sorts nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StructType

from etl_lib.config import RuleConfig, TableQualityConfig, interval
from etl_lib.errors import ConfigError

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


def _shown(value: float | str | None) -> str:
    """A bound as written: ``10`` rather than ``10.0``, nothing for no bound."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _message(rule: RuleConfig) -> str:
    column = ", ".join(rule.target_columns)
    if rule.type == "completeness":
        return f"{column} is missing"
    if rule.type == "uniqueness":
        return f"repeats another row's {column}"
    if rule.type == "validity":
        return f"{column} does not match {rule.pattern}"
    if rule.type == "range":
        bounds = f"[{_shown(rule.min)}, {_shown(rule.max)}]"
        return f"{column} is outside {bounds}"
    if rule.type == "allowed_values":
        return f"{column} is not one of {', '.join(str(v) for v in rule.values or [])}"
    return f"fails {rule.expression}"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _text(value: str) -> str:
    # A Spark SQL string literal: backslashes and quotes escaped.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _value(value: float | str | int, kind: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if kind in ("date", "timestamp", "timestamp_ntz") or kind.startswith("decimal"):
        return f"CAST({_text(value)} AS {kind})"
    return _text(value)


def failure_sql(rule: RuleConfig, types: dict[str, str], key_order: list[str]) -> str:
    """SQL that is true where a row fails ``rule`` (row rules only).

    Rules are written as one SQL text each so that a table's rules become one projection built in one
    call, however many there are (building them column by column costs a round trip per operator).

    Args:
        rule: the rule.
        types: column -> Spark SQL type name (``DataFrame.dtypes``); a column not there is taken as a string.
        key_order: the table's key columns: of rows repeating a uniqueness rule's values, the first in this
            order passes; empty for no particular order.
    """
    if rule.type == "uniqueness":
        # Every row after the first of its values fails: the count of exact repeats.
        partition = ", ".join(_ident(c) for c in rule.columns or [])
        order = ", ".join(_ident(c) for c in key_order) or "1"
        return f"row_number() OVER (PARTITION BY {partition} ORDER BY {order}) > 1"
    if rule.type == "expression":
        return f"NOT coalesce(({rule.expression}), false)"
    column = _ident(rule.column or "")
    kind = types.get(rule.column or "", "string")
    if rule.type == "completeness":
        return f"({column} IS NULL OR trim({column}) = '')" if kind == "string" else f"{column} IS NULL"
    if rule.type == "validity":
        return f"({column} IS NOT NULL AND NOT CAST({column} AS STRING) RLIKE {_text(rule.pattern or '')})"
    if rule.type == "range":
        bounds = []
        if rule.min is not None:
            bounds.append(f"{column} < {_value(rule.min, kind)}")
        if rule.max is not None:
            bounds.append(f"{column} > {_value(rule.max, kind)}")
        return f"({column} IS NOT NULL AND ({' OR '.join(bounds)}))"
    values = ", ".join(_value(v, kind) for v in rule.values or [])
    return f"({column} IS NOT NULL AND NOT {column} IN ({values}))"


def _reason_sql(rule: RuleConfig, name: str, run_id: str) -> str:
    column = ", ".join(rule.target_columns)
    fields = [
        f"'rule', {_text(rule.name)}",
        f"'column', {_text(column) if column else 'CAST(NULL AS STRING)'}",
        f"'message', {_text(_message(rule))}",
        f"'run_id', {_text(run_id)}",
    ]
    return f"CASE WHEN {name} THEN named_struct({', '.join(fields)}) END"


def _failure_columns(frame: DataFrame, table: TableQualityConfig) -> tuple[DataFrame, list[str]]:
    """``frame`` with a boolean failure column per row rule, and their names ("" for dataset rules)."""
    types = dict(frame.dtypes)
    columns = [f"__dq_fail_{index}" if rule.is_row_rule else "" for index, rule in enumerate(table.rules)]
    flags = [
        f"{failure_sql(rule, types, list(table.key))} AS {name}"
        for rule, name in zip(table.rules, columns, strict=True)
        if name
    ]
    return frame.selectExpr("*", *flags), columns


def _with_failures(checked: DataFrame, table: TableQualityConfig, columns: list[str], run_id: str) -> DataFrame:
    """``checked`` with ``_dq_failures``: the reasons of the rules named in ``columns`` that the row fails."""
    reasons = [_reason_sql(rule, name, run_id) for rule, name in zip(table.rules, columns, strict=True) if name]
    failures = f"filter(array({', '.join(reasons)}), r -> r IS NOT NULL)" if reasons else "array()"
    return checked.selectExpr("*", f"CAST({failures} AS {FAILURE_TYPE}) AS {FAILURES}")


def _sample_key(table: TableQualityConfig) -> Column:
    if not table.key:
        return F.lit(None).cast("string")
    return F.concat_ws("|", *[_quoted(k).cast("string") for k in table.key])


def counted_by_values(rule: RuleConfig) -> bool:
    """Whether ``rule`` is a uniqueness rule that moves no row, so its failures are counted from its values."""
    return rule.type == "uniqueness" and rule.action not in ("quarantine", "drop")


def _values(rule: RuleConfig) -> Column:
    # A struct is never null, so rows whose columns are all null count as one value, as they form one partition
    # of the window that flags the rows.
    return F.struct(*[_quoted(c) for c in rule.columns or []])


@dataclass(frozen=True)
class _Metrics:
    """The row of the one aggregation: counts by name, and the newest value of each freshness rule's column.

    The counts are ``rows``, ``quarantined``, ``dropped`` and ``f<i>`` (the rows rule ``i`` fails); a sum over no
    rows is null in Spark, and counts as 0 here. ``m<i>`` is the newest value of freshness rule ``i``'s column.
    """

    values: dict[str, object]

    def count(self, name: str) -> int:
        value = self.values.get(name)
        return int(value) if isinstance(value, int) else 0

    def newest(self, index: int) -> object:
        return self.values.get(f"m{index}")


def _metrics(
    flagged: DataFrame, table: TableQualityConfig, columns: list[str], quarantine: Column, drop: Column
) -> _Metrics:
    """Every count the rules and actions need, from one aggregation (one Spark job).

    Only counts and fixed-width values are aggregated: per-rule aggregates of text (sample keys, say)
    multiply the cost of the pass with the number of rules. A uniqueness rule that moves no row is counted
    as the rows less its distinct values (the rows after the first of each value), so its window is not
    computed.
    """
    aggregates: list[Column] = [
        F.count(F.lit(1)).alias("rows"),
        F.sum(quarantine.cast("bigint")).alias("quarantined"),
        F.sum((drop & ~quarantine).cast("bigint")).alias("dropped"),
    ]
    for index, (rule, name) in enumerate(zip(table.rules, columns, strict=True)):
        if name and counted_by_values(rule):
            aggregates.append((F.count(F.lit(1)) - F.count_distinct(_values(rule))).alias(f"f{index}"))
        elif name:
            aggregates.append(F.sum(F.col(name).cast("bigint")).alias(f"f{index}"))
        elif rule.type == "freshness":
            aggregates.append(F.max(_quoted(rule.column or "")).alias(f"m{index}"))
    row = flagged.agg(*aggregates).first()
    return _Metrics({} if row is None else row.asDict())


SAMPLE_BUDGET = 1000


def _samples(
    flagged: DataFrame, table: TableQualityConfig, columns: list[str], failing: set[str]
) -> dict[str, list[str]]:
    """A few keys of failing rows per failing rule, from the first failing rows found (a bounded read)."""
    if not table.key or not failing:
        return {}
    by_values = {
        name: rule
        for rule, name in zip(table.rules, columns, strict=True)
        if name in failing and counted_by_values(rule)
    }
    found = {name: _repeat_samples(flagged, table, rule) for name, rule in by_values.items()}
    named = [name for name in columns if name in failing and name not in by_values]
    found.update({name: [] for name in named})
    if named:
        any_failure = _any(named)
        rows = flagged.where(any_failure).select(_sample_key(table).alias("key"), *named).limit(SAMPLE_BUDGET).collect()
        for row in rows:
            for name in named:
                if row[name] and len(found[name]) < SAMPLES and row["key"] not in found[name]:
                    found[name].append(row["key"])
    return found


def _later_keys(rows: Sequence[Any], size: int) -> list[str]:
    """Keys of rows that are not the first of their value, among ``rows`` (value, order, key) read in any order.

    Of the rows read with one value, all but the first in key order fail the rule wherever the others are: a
    row with the same value and an earlier key was read.
    """
    seen: dict[str, list[tuple[Any, str]]] = {}
    for row in rows:
        seen.setdefault(repr(tuple(row["value"])), []).append((row["order"], row["key"]))
    keys: list[str] = []
    for same in seen.values():
        # Spark sorts nulls first, so a null key component sorts before any value.
        same.sort(key=lambda pair: tuple((part is not None, part) for part in pair[0]))
        keys.extend(key for _, key in same[1:] if key not in keys)
    return keys[:size]


def _repeat_samples(frame: DataFrame, table: TableQualityConfig, rule: RuleConfig) -> list[str]:
    """A few keys of rows after the first of their value, without ranking every row of the batch.

    The first rows of the batch are read (a bounded read); if they hold too few repeats, a grouping finds a few
    repeated values, and only the rows of those are ranked.
    """
    columns = [
        _values(rule).alias("value"),
        F.struct(*[_quoted(k) for k in table.key]).alias("order"),
        _sample_key(table).alias("key"),
    ]
    keys = _later_keys(frame.select(*columns).limit(SAMPLE_BUDGET).collect(), SAMPLES)
    if len(keys) >= SAMPLES:
        return keys
    repeated = (
        frame.groupBy(_values(rule).alias("__dq_value"))
        .agg(F.count(F.lit(1)).alias("__dq_rows"))
        .where("__dq_rows > 1")
        .select("__dq_value")
        .limit(SAMPLES)
    )
    later = failure_sql(rule, dict(frame.dtypes), list(table.key))
    rows = (
        frame.join(repeated, _values(rule).eqNullSafe(F.col("__dq_value")), "left_semi")
        .select(_sample_key(table).alias("key"), F.expr(later).alias("__dq_later"))
        .where("__dq_later")
        .limit(SAMPLE_BUDGET)
        .collect()
    )
    for row in rows:
        if len(keys) < SAMPLES and row["key"] not in keys:
            keys.append(row["key"])
    return keys


def _result(rule: RuleConfig, index: int, metrics: _Metrics, reference: dt.datetime, samples: list[str]) -> RuleResult:
    rows = metrics.count("rows")
    if rule.type == "row_count":
        low_ok = rule.min is None or rows >= float(rule.min)
        high_ok = rule.max is None or rows <= float(rule.max)
        expected = f"[{_shown(rule.min)}, {_shown(rule.max)}]"
        return RuleResult(
            rule.name,
            rule.type,
            [],
            rule.severity,
            rule.action,
            float(rows),
            None,
            low_ok and high_ok,
            0,
            rows,
            [],
            f"{rows} rows, expected {expected}",
        )
    if rule.type == "freshness":
        newest = metrics.newest(index)
        age = (reference - _aware(newest)).total_seconds() if isinstance(newest, dt.datetime) else None
        limit = interval(rule.max_age or "0 seconds").total_seconds()
        fresh = age is not None and age <= limit
        return RuleResult(
            rule.name,
            rule.type,
            rule.target_columns,
            rule.severity,
            rule.action,
            age,
            limit,
            fresh,
            0,
            rows,
            [],
            f"newest {rule.column} is {age if age is not None else 'absent'} s old, limit {limit:.0f} s",
        )
    failing = metrics.count(f"f{index}")
    ratio = 1.0 - failing / rows if rows else 1.0
    return RuleResult(
        rule.name,
        rule.type,
        rule.target_columns,
        rule.severity,
        rule.action,
        ratio,
        rule.threshold,
        ratio >= rule.threshold,
        failing,
        rows,
        samples[:SAMPLES],
        f"{failing} of {rows} rows: {_message(rule)}",
    )


def _aware(moment: object) -> dt.datetime:
    assert isinstance(moment, dt.datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


#: Expression nodes a rule may not hold: a rule judges one row by the table's own columns, and nothing else.
_REFUSED_NODES = {
    "CallMethodViaReflection": "calls a Java method",
    "TryReflect": "calls a Java method",
    "ScalaUDF": "calls a user-defined function",
    "PythonUDF": "calls a user-defined function",
    "ScalarSubquery": "runs a subquery",
    "Exists": "runs a subquery",
    "ListQuery": "runs a subquery",
    "InSubquery": "runs a subquery",
    "LateralSubquery": "runs a subquery",
}


#: Built-in functions a rule may not call: they reach Java, or fail on purpose instead of judging a row.
_REFUSED_FUNCTIONS = {"reflect", "java_method", "try_reflect", "raise_error", "assert_true"}
#: PySpark's logger of analysis errors is shared by every thread checking rules: silenced while any of them probes.
_QUIET = threading.Lock()
_quiet_depth = [0, logging.NOTSET]


@contextmanager
def _analysis_errors_unlogged() -> Iterator[None]:
    """PySpark logs every analysis error it raises; a refused rule is reported once, by the caller."""
    quiet = logging.getLogger("SQLQueryContextLogger")
    with _QUIET:
        if _quiet_depth[0] == 0:
            _quiet_depth[1] = quiet.level
            quiet.setLevel(logging.CRITICAL)
        _quiet_depth[0] += 1
    try:
        yield
    finally:
        with _QUIET:
            _quiet_depth[0] -= 1
            if _quiet_depth[0] == 0:
                quiet.setLevel(_quiet_depth[1])


def _nodes(expression: Any) -> Iterator[Any]:
    """A Catalyst expression (through Py4J) and every expression under it."""
    stack = [expression]
    while stack:
        node = stack.pop()
        yield node
        children = node.children()
        stack.extend(children.apply(i) for i in range(children.size()))


def _node_names(expression: Any) -> Iterator[str]:
    """Simple class names of a Catalyst expression and of every expression under it."""
    for node in _nodes(expression):
        yield str(node.getClass().getSimpleName())


def _function_problem(spark: SparkSession, expression: str) -> str | None:
    """Why a function ``expression`` calls is not allowed in a rule: only Spark's own built-ins are."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    parsed = spark._jsparkSession.sessionState().sqlParser().parseExpression(expression)
    # The Scala object itself: Scala 2.12 (the Spark 3.5 line) gives a trait's companion no static forwarders.
    registry = getattr(jvm.org.apache.spark.sql.catalyst.analysis, "FunctionRegistry$")
    builtin = getattr(registry, "MODULE$").builtin()
    for node in _nodes(parsed):
        if str(node.getClass().getSimpleName()) != "UnresolvedFunction":
            continue
        parts = node.nameParts()
        name = ".".join(str(parts.apply(i)) for i in range(parts.size()))
        known = parts.size() == 1 and builtin.functionExists(jvm.org.apache.spark.sql.catalyst.FunctionIdentifier(name))
        if not known:
            return f"it calls {name}, which is not one of Spark's built-in functions"
        if name.lower() in _REFUSED_FUNCTIONS:
            return f"it calls {name}, which a rule may not call"
    return None


def expression_problem(spark: SparkSession, expression: str, schema: StructType) -> str | None:
    """Why ``expression`` is not a row rule over a table of ``schema``, or None when it is one.

    Spark parses and analyses it against an empty frame of the schema: it must resolve to a boolean using
    only those columns, with no aggregate, window, generator, subquery, user function or Java reflection.
    Nothing is read.
    """
    probe = spark.createDataFrame([], schema)
    try:
        with _analysis_errors_unlogged():
            projected = probe.selectExpr(f"({expression}) AS __rule")
            kind = projected.schema["__rule"].dataType
            plan = projected._jdf.queryExecution().analyzed()
    except Exception as error:  # noqa: BLE001 - Spark's parse and analysis errors are what the caller reports
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"Spark cannot read it: {lines[0] if lines else type(error).__name__}"
    if not isinstance(kind, BooleanType):
        return f"it is {kind.simpleString()}, not boolean"
    source = probe._jdf.queryExecution().analyzed().nodeName()
    if plan.nodeName() != "Project" or plan.child().nodeName() != source:
        return "it is not a row expression (aggregates, windows and generators are not rules of a row)"
    expressions = plan.expressions()
    for index in range(expressions.size()):
        for node in _node_names(expressions.apply(index)):
            if node in _REFUSED_NODES:
                return f"it {_REFUSED_NODES[node]}"
    return _function_problem(spark, expression)


def check_expressions(frame: DataFrame, name: str, table: TableQualityConfig) -> None:
    """Refuse a table whose expression rules are not boolean row expressions over ``frame``'s columns.

    Args:
        frame: the batch whose columns the expressions may use (only its schema is read).
        name: ``layer/table``, for the error.
        table: the table's rules.

    Raises:
        ConfigError: naming the table, the rule and what is wrong with its expression.
    """
    for rule in table.rules:
        if rule.type != "expression" or rule.expression is None:
            continue
        problem = _expression_problem_cached(frame.sparkSession, rule.expression, frame.schema.json())
        if problem:
            raise ConfigError(f"quality.tables.{name}: rule {rule.name}: expression {rule.expression!r}: {problem}")


_checked: dict[tuple[str, str], str | None] = {}


def _expression_problem_cached(spark: SparkSession, expression: str, schema_json: str) -> str | None:
    # A stream checks the same rules on every micro-batch: Spark analyses each expression once per schema.
    key = (expression, schema_json)
    if key not in _checked:
        _checked[key] = expression_problem(spark, expression, StructType.fromJson(json.loads(schema_json)))
    return _checked[key]


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
    check_expressions(frame, name, table)
    checked, columns = _failure_columns(frame, table)
    flagged = _with_failures(checked, table, columns, run_id)
    quarantine, drop = _actions(table, columns)
    metrics = _metrics(flagged, table, columns, quarantine, drop)
    failing = {i for i, column in enumerate(columns) if column and metrics.count(f"f{i}")}
    samples = _samples(flagged, table, columns, {columns[i] for i in failing})
    results = [
        _result(rule, i, metrics, reference_time, samples.get(columns[i], [])) for i, rule in enumerate(table.rules)
    ]
    rows = metrics.count("rows")
    score = sum(r.passed for r in results) / len(results) if results else 1.0
    held = score < threshold
    # The rows to write keep the failure columns of the rules that failed some row only: a rule no row failed
    # adds nothing to any row's failures and sends no row aside, and Spark then leaves its column (and, for
    # uniqueness, the window over the whole batch) out of the plan, instead of computing it a second time.
    # A clean batch is written as it came.
    written = [column if index in failing else "" for index, column in enumerate(columns)]
    unused = [column for column in columns if column and column not in written]
    flagged = _with_failures(checked.drop(*unused), table, written, run_id)
    quarantine, drop = _actions(table, written)
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
        dropped_rows=0 if held else metrics.count("dropped"),
        quarantined_rows=rows if held else metrics.count("quarantined"),
        held=held,
        held_rows=everything if held else everything.limit(0),
        failed=[r for r in results if not r.passed and r.action == "fail"],
    )


def _actions(table: TableQualityConfig, columns: list[str]) -> tuple[Column, Column]:
    """Whether a row goes to quarantine, and whether it is dropped, by the rules that have a column."""
    by_action: dict[str, list[str]] = {"quarantine": [], "drop": []}
    for rule, column in zip(table.rules, columns, strict=True):
        if column and rule.action in by_action:
            by_action[rule.action].append(column)
    return _any(by_action["quarantine"]), _any(by_action["drop"])


def _any(columns: Sequence[str]) -> Column:
    if not columns:
        return F.lit(False)
    result = F.col(columns[0])
    for name in columns[1:]:
        result = result | F.col(name)
    return result
