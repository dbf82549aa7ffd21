from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import RuleConfig, TableQualityConfig
from etl_lib.errors import ConfigError
from etl_lib.quality.engine import FAILURES, evaluate, expression_problem

NOW = dt.datetime(2011, 12, 10, tzinfo=dt.UTC)
SCHEMA = "id STRING, code STRING, qty INT, price DOUBLE, country STRING, at TIMESTAMP"


def lines(spark: SparkSession) -> DataFrame:
    rows = [
        ("1", "85123A", 6, 2.55, "UK", dt.datetime(2011, 12, 9, 10)),
        ("2", "POST", 1, 18.0, "UK", dt.datetime(2011, 12, 9, 11)),
        ("3", "22423", -1, 0.0, None, dt.datetime(2011, 12, 9, 12)),
        ("3", "22423", 80995, 2.08, "Narnia", dt.datetime(2011, 12, 9, 13)),
    ]
    return spark.createDataFrame(rows, SCHEMA)


def rules(*specs: dict[str, Any], key: tuple[str, ...] = ("id",)) -> TableQualityConfig:
    return TableQualityConfig(key=list(key), rules=[RuleConfig(**spec) for spec in specs])


def test_every_rule_type_counts_its_failures_and_names_samples(spark: SparkSession) -> None:
    table = rules(
        {"name": "country_known", "type": "completeness", "column": "country", "threshold": 0.7},
        {"name": "id_unique", "type": "uniqueness", "columns": ["id"]},
        {"name": "product_code", "type": "validity", "column": "code", "pattern": "^[0-9]{5}"},
        {"name": "qty_plausible", "type": "range", "column": "qty", "min": -10000, "max": 10000},
        {"name": "known_country", "type": "allowed_values", "column": "country", "values": ["UK", "EIRE"]},
        {"name": "priced", "type": "expression", "expression": "price > 0", "threshold": 0.5},
        {"name": "enough_rows", "type": "row_count", "min": 5},
        {"name": "fresh", "type": "freshness", "column": "at", "max_age": "1 day"},
        {"name": "recent", "type": "range", "column": "at", "min": "2011-12-09 11:30:00"},
    )
    evaluation = evaluate(lines(spark), "silver/lines", table, 0.5, "run-1", NOW)
    found = {r.rule: (r.failing_rows, r.passed, r.sample_keys) for r in evaluation.results}
    assert found == {
        "country_known": (1, True, ["3"]),
        "id_unique": (1, False, ["3"]),
        "product_code": (1, False, ["2"]),
        "qty_plausible": (1, False, ["3"]),
        "known_country": (1, False, ["3"]),
        "priced": (1, True, ["3"]),
        "enough_rows": (0, False, []),
        "fresh": (0, True, []),
        "recent": (2, False, ["1", "2"]),
    }
    assert evaluation.score == pytest.approx(3 / 9)
    assert evaluation.held  # 3 of 9 rules pass, below the 0.5 threshold
    assert evaluation.kept.count() == 0
    assert evaluation.held_rows.count() == 4


def test_row_results_travel_with_the_rows_and_actions_apply(spark: SparkSession) -> None:
    table = rules(
        {
            "name": "product_code",
            "type": "validity",
            "column": "code",
            "pattern": "^[0-9]{5}",
            "action": "warn",
            "threshold": 0.5,
        },
        {
            "name": "qty_plausible",
            "type": "range",
            "column": "qty",
            "max": 10000,
            "action": "quarantine",
            "threshold": 0.5,
        },
        {"name": "priced", "type": "expression", "expression": "price > 0", "action": "drop", "threshold": 0.5},
    )
    evaluation = evaluate(lines(spark), "silver/lines", table, 0.5, "run-7", NOW)
    assert (evaluation.score, evaluation.held) == (1.0, False)
    assert (evaluation.quarantined_rows, evaluation.dropped_rows) == (1, 1)
    kept = evaluation.kept.select("id", "qty", FAILURES)
    expected = spark.createDataFrame(
        [("1", 6, []), ("2", 1, [("product_code", "code", "code does not match ^[0-9]{5}", "run-7")])],
        f"id STRING, qty INT, {FAILURES} ARRAY<STRUCT<rule: STRING, column: STRING, message: STRING, run_id: STRING>>",
    )
    assert_df_equality(kept, expected, ignore_row_order=True, ignore_nullable=True)
    [quarantined] = evaluation.quarantined.collect()
    assert quarantined["qty"] == 80995
    assert [f["rule"] for f in quarantined[FAILURES]] == ["qty_plausible"]


def test_a_clean_batch_is_written_as_it_came_without_evaluating_its_rules_again(spark: SparkSession) -> None:
    frame = lines(spark).where("id <> '3'")
    table = rules(
        {"name": "id_unique", "type": "uniqueness", "columns": ["id"], "action": "quarantine"},
        {"name": "qty_plausible", "type": "range", "column": "qty", "max": 10000, "action": "drop"},
    )
    evaluation = evaluate(frame, "silver/lines", table, 0.5, "run-1", NOW)
    assert (evaluation.score, evaluation.quarantined_rows, evaluation.dropped_rows) == (1.0, 0, 0)
    expected = frame.selectExpr(
        "*", f"CAST(array() AS {evaluation.kept.schema[FAILURES].dataType.simpleString()}) AS {FAILURES}"
    )
    assert_df_equality(evaluation.kept, expected, ignore_row_order=True, ignore_nullable=True)
    assert evaluation.quarantined.count() == 0
    # No rule failed a row: the rows to write do not pay for the rules (the uniqueness window) a second time.
    plan = evaluation.kept._jdf.queryExecution().optimizedPlan().toString()
    assert "row_number" not in plan.lower()
    assert "Window" not in plan


def test_a_fail_rule_that_does_not_pass_is_reported(spark: SparkSession) -> None:
    table = rules({"name": "enough_rows", "type": "row_count", "min": 10, "severity": "error", "action": "fail"})
    evaluation = evaluate(lines(spark), "silver/lines", table, 0.0, "run-1", NOW)
    assert [r.rule for r in evaluation.failed] == ["enough_rows"]


def repeats(spark: SparkSession) -> DataFrame:
    """60 rows keyed 0..59: ``v`` repeats every 20 rows up to 39, then is null; ``w`` is one value throughout."""
    rows = [(i, i % 20 if i < 40 else None, "a") for i in range(60)]
    return spark.createDataFrame(rows, "id INT, v INT, w STRING")


#: The rows after the first of their value in key order: 20..39 (v repeats), 41..59 (null repeats).
LATER = {str(i) for i in [*range(20, 40), *range(41, 60)]}


@pytest.mark.parametrize("budget", [1000, 5])
def test_a_uniqueness_rule_that_moves_no_row_counts_and_samples_what_ranking_the_rows_finds(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, budget: int
) -> None:
    from etl_lib.quality import engine

    # With a budget of 5 rows the first rows read hold no repeat: the grouping finds repeated values instead.
    monkeypatch.setattr(engine, "SAMPLE_BUDGET", budget)
    counted = [
        {"name": "v_unique", "type": "uniqueness", "columns": ["v"]},
        {"name": "vw_unique", "type": "uniqueness", "columns": ["v", "w"], "action": "fail"},
        {"name": "w_unique", "type": "uniqueness", "columns": ["w"], "threshold": 0.0},
    ]
    ranked = [{**rule, "name": rule["name"] + "_q", "action": "quarantine"} for rule in counted]
    evaluation = evaluate(repeats(spark), "silver/x", rules(*counted, *ranked), 0.0, "run-1", NOW)
    found = {r.rule: (r.failing_rows, r.sample_keys) for r in evaluation.results}
    assert {rule: failing for rule, (failing, _) in found.items()} == {
        "v_unique": 39,
        "vw_unique": 39,
        "w_unique": 59,
        "v_unique_q": 39,
        "vw_unique_q": 39,
        "w_unique_q": 59,
    }
    for rule, (_, samples) in found.items():
        assert len(samples) == engine.SAMPLES, rule
        assert set(samples) <= (LATER if rule.startswith("v") else LATER | {str(i) for i in range(1, 20)} | {"40"})
    # The rows written are flagged by ranking them, whichever way the check counted.
    written = evaluation.kept.unionByName(evaluation.quarantined)
    flagged = written.where(f"exists({FAILURES}, f -> f.rule = 'v_unique')").select("id")
    assert {str(row["id"]) for row in flagged.collect()} == LATER


def test_later_keys_are_the_rows_read_after_the_first_of_their_value_in_key_order() -> None:
    from etl_lib.quality.engine import _later_keys

    rows = [
        {"value": (1,), "order": (5,), "key": "5"},
        {"value": (1,), "order": (None,), "key": "null"},  # a null key sorts first, as in Spark
        {"value": (2,), "order": (7,), "key": "7"},
        {"value": (1,), "order": (3,), "key": "3"},
        {"value": (None,), "order": (9,), "key": "9"},
        {"value": (None,), "order": (8,), "key": "8"},
    ]
    assert _later_keys(rows, 10) == ["3", "5", "9"]
    assert _later_keys(rows, 2) == ["3", "5"]


def test_metrics_take_the_same_spark_jobs_for_one_rule_or_fifty(spark: SparkSession) -> None:
    frame = spark.range(20_000).selectExpr("CAST(id AS STRING) AS id", "id % 97 AS qty").persist()
    frame.count()
    tracker = spark.sparkContext.statusTracker()

    def jobs_for(count: int) -> int:
        # Without a key no sample keys are looked up: what is counted is the metrics pass alone.
        table = rules(
            *[
                {"name": f"r{i}", "type": "range", "column": "qty", "min": 0, "max": 90 - i % 5, "threshold": 0}
                for i in range(count)
            ],
            key=(),
        )
        group = f"quality-{count}"
        spark.sparkContext.setJobGroup(group, group)
        evaluate(frame, "silver/x", table, 0.0, "run", NOW)
        spark.sparkContext.setJobGroup("", "")
        return len(tracker.getJobIdsForGroup(group))

    assert jobs_for(1) == jobs_for(10) == jobs_for(50)
    frame.unpersist()


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("qty + 1", "it is int, not boolean"),
        ("nope > 1", "Spark cannot read it: [UNRESOLVED_COLUMN.WITH_SUGGESTION]"),
        ("qty > 0; DROP TABLE x", "Spark cannot read it: [PARSE_SYNTAX_ERROR]"),
        ("count(*) > 0", "it is not a row expression"),
        ("row_number() OVER (ORDER BY qty) > 1", "it is not a row expression"),
        ("qty IN (SELECT 1)", "it runs a subquery"),
        ("qty > (SELECT max(id) FROM range(3))", "it runs a subquery"),
        ("reflect('java.lang.System', 'getProperty', 'user.home') IS NOT NULL", "it calls a Java method"),
        ("java_method('java.lang.Math', 'abs', qty) > 0", "it calls a Java method"),
        # Spark 4 has try_reflect; Spark 3.5 does not know the name.
        (
            "try_reflect('java.lang.Math', 'abs', qty) IS NULL",
            ("it calls a Java method", "Spark cannot read it: [UNRESOLVED_ROUTINE]"),
        ),
        ("EXISTS (SELECT 1)", "it runs a subquery"),
        ("raise_error('stop') IS NULL", "it calls raise_error, which a rule may not call"),
        ("assert_true(qty > 0) IS NULL", "it calls assert_true, which a rule may not call"),
        ("registered_udf(qty)", "Spark cannot read it: [UNRESOLVED_ROUTINE]"),
        ("spark_catalog.default.fn(qty)", "Spark cannot read it: [UNRESOLVED_ROUTINE]"),
    ],
)
def test_an_expression_rule_must_be_a_boolean_row_expression_over_the_tables_columns(
    spark: SparkSession, expression: str, problem: str | tuple[str, ...]
) -> None:
    table = rules({"name": "hostile", "type": "expression", "expression": expression})
    with pytest.raises(ConfigError) as raised:
        evaluate(lines(spark), "silver/lines", table, 0.8, "run-1", NOW)
    message = str(raised.value)
    problems = problem if isinstance(problem, tuple) else (problem,)
    prefix = f"quality.tables.silver/lines: rule hostile: expression {expression!r}: "
    assert message.startswith(tuple(prefix + p for p in problems)), message
    assert "\n" not in message


def test_a_good_expression_is_checked_against_the_schema_it_runs_on(spark: SparkSession) -> None:
    assert expression_problem(spark, "country RLIKE '^U' AND price < 10", lines(spark).schema) is None
    # The same text is refused over a table without those columns.
    other = spark.createDataFrame([], "id STRING").schema
    assert (expression_problem(spark, "country RLIKE '^U'", other) or "").startswith(
        "Spark cannot read it: [UNRESOLVED_COLUMN"
    )


def test_a_function_registered_in_the_session_is_not_a_rule_function(spark: SparkSession) -> None:
    spark.udf.register("positive_qty", lambda q: q is not None and q > 0, "boolean")
    problem = expression_problem(spark, "positive_qty(qty)", lines(spark).schema)
    assert problem is not None
    assert problem.startswith("it call")  # a user-defined function, refused by its node or by its name
