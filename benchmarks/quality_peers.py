"""The same quality rules on the same cached table through the suite, Amazon Deequ (PyDeequ) and Great Expectations.

Table: the Online Retail extract (541,909 rows at full size), read from Parquet, spread over every core and
cached, so that each tool is timed on its own work. Six rules every tool can say: a column present, a range,
a unique column, a pattern, a set of allowed values and a row count. Each tool runs them as it would for
a user: the suite's ``evaluate`` (one counting pass), Deequ's ``VerificationSuite`` with one ``Check``
(its analyzers share scans), Great Expectations' validation of one suite on a Spark batch (results as
booleans only, so that no failing values are collected).

The claim: the suite is at least as fast as Deequ. Deequ publishes builds per Spark and Scala version; on a
line without one (``deequ`` absent from its ``stack.toml`` section) Deequ is not run and the result says so.
Each line writes its own result file (``quality_peers_<line>.json``): ``make bench LINE=spark35
BENCH=quality_peers`` adds Deequ's numbers beside those of the default line.

Tools judge some rules differently, and the table has failing rows on purpose (missing customer ids,
repeated invoice numbers): what each tool found is recorded beside its time so that a reader can see
that all three judged the same rules, not that they agree on every definition (uniqueness, for one, is
"no repeated value" for Deequ and Great Expectations and "rows after the first of their value" for the
suite).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from benchmarks.harness import measure, record, target

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
SIZES = {"tiny": 5_000, "full": None}
COUNTRIES = ["United Kingdom", "Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland"]
PATTERN = "^[0-9]{5}[A-Za-z]?$"
QUANTITY = (-100_000, 100_000)
MAX_ROWS = 10_000_000

#: The six rules in the suite's own terms.
RULES: list[dict[str, Any]] = [
    {"name": "customer_present", "type": "completeness", "column": "CustomerID", "threshold": 1.0},
    {"name": "quantity_range", "type": "range", "column": "Quantity", "min": QUANTITY[0], "max": QUANTITY[1]},
    {"name": "invoice_unique", "type": "uniqueness", "columns": ["InvoiceNo"], "threshold": 1.0},
    {"name": "stock_code_pattern", "type": "validity", "column": "StockCode", "pattern": PATTERN, "threshold": 1.0},
    {"name": "known_country", "type": "allowed_values", "column": "Country", "values": COUNTRIES, "threshold": 1.0},
    {"name": "row_count", "type": "row_count", "min": 1, "max": MAX_ROWS},
]


def suite_check(frame: Any, rules: list[dict[str, Any]] = RULES) -> dict[str, bool]:
    """The suite's engine: rule name -> passed."""
    from etl_lib.config import RuleConfig, TableQualityConfig
    from etl_lib.quality.engine import evaluate

    table = TableQualityConfig(key=["InvoiceNo"], rules=[RuleConfig(**spec) for spec in rules])
    evaluation = evaluate(frame, "bronze/online_retail", table, 0.0, "bench", dt.datetime(2011, 12, 10, tzinfo=dt.UTC))
    return {result.rule: result.passed for result in evaluation.results}


def deequ_check(spark: Any, frame: Any) -> dict[str, bool]:
    """PyDeequ: one Check with the six constraints, run by a VerificationSuite; constraint -> passed."""
    from pydeequ.checks import Check, CheckLevel
    from pydeequ.verification import VerificationResult, VerificationSuite

    low, high = QUANTITY
    check = (
        Check(spark, CheckLevel.Error, "bench")
        .isComplete("CustomerID")
        .satisfies(f"Quantity BETWEEN {low} AND {high}", "quantity_range", lambda share: share == 1.0)
        .isUnique("InvoiceNo")
        .hasPattern("StockCode", PATTERN)
        .isContainedIn("Country", COUNTRIES)
        .hasSize(lambda rows: 1 <= rows <= MAX_ROWS)
    )
    result = VerificationSuite(spark).onData(frame).addCheck(check).run()
    rows = VerificationResult.checkResultsAsDataFrame(spark, result).select("constraint", "constraint_status").collect()
    names = [spec["name"] for spec in RULES]
    return {name: row["constraint_status"] == "Success" for name, row in zip(names, rows, strict=True)}


class GreatExpectations:
    """One ephemeral Great Expectations context with the six expectations, validating Spark batches."""

    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        # The benchmark caches the table itself: Great Expectations is not to cache it again.
        source = context.data_sources.add_spark(name="bench", persist=False)
        self.batches = source.add_dataframe_asset(name="online_retail").add_batch_definition_whole_dataframe("all")
        low, high = QUANTITY
        self.suite = context.suites.add(
            gx.ExpectationSuite(
                name="bench",
                expectations=[
                    gxe.ExpectColumnValuesToNotBeNull(column="CustomerID"),
                    gxe.ExpectColumnValuesToBeBetween(column="Quantity", min_value=low, max_value=high),
                    gxe.ExpectColumnValuesToBeUnique(column="InvoiceNo"),
                    gxe.ExpectColumnValuesToMatchRegex(column="StockCode", regex=PATTERN),
                    gxe.ExpectColumnValuesToBeInSet(column="Country", value_set=COUNTRIES),
                    gxe.ExpectTableRowCountToBeBetween(min_value=1, max_value=MAX_ROWS),
                ],
            )
        )

    def check(self, frame: Any) -> dict[str, bool]:
        """Expectation -> passed, in the order of the suite's rules."""
        batch = self.batches.get_batch(batch_parameters={"dataframe": frame})
        outcome = batch.validate(self.suite, result_format="BOOLEAN_ONLY")
        by_type = {result.expectation_config.type: bool(result.success) for result in outcome.results}
        types = [
            "expect_column_values_to_not_be_null",
            "expect_column_values_to_be_between",
            "expect_column_values_to_be_unique",
            "expect_column_values_to_match_regex",
            "expect_column_values_to_be_in_set",
            "expect_table_row_count_to_be_between",
        ]
        return {spec["name"]: by_type[kind] for spec, kind in zip(RULES, types, strict=True)}


def _session(line: Any) -> Any:
    """A local session with the suite's jars and, where the line has a Deequ build, Deequ's."""
    from etl_lib.config import load_config
    from etl_lib.runtime.jars import cached_jars, deequ_jar_set
    from etl_lib.runtime.session import build_session, local_session_conf

    config = load_config(PROJECT / "conf" / "local.yaml", ["spark.log_level=ERROR"])
    deequ = deequ_jar_set(line)
    extra = [str(jar) for jar in cached_jars(deequ)] if deequ else []
    jars = [local_session_conf(config.spark)["spark.jars"], *extra]  # the suite's own jars, then Deequ's
    conf = {**config.spark.conf, "spark.jars": ",".join(jars)}
    return build_session(config.spark.model_copy(update={"conf": conf}))


def run(size: str, repeat: int = 5, results_dir: Path | None = None, spark: Any = None) -> dict[str, Any]:
    """Measure ``size`` (tiny|full); ``spark`` reuses a session (it is then left running, and has no Deequ)."""
    from etl_lib.runtime.stack import active_line

    line = active_line()
    own_session = spark is None
    spark = spark or _session(line)
    with_deequ = own_session and line.deequ is not None
    if with_deequ:
        os.environ.setdefault("SPARK_VERSION", line.spark_minor)  # PyDeequ refuses to load without it
    frame = spark.read.parquet(str(DATA))
    if SIZES[size] is not None:
        frame = frame.limit(SIZES[size])
    frame = frame.repartition(spark.sparkContext.defaultParallelism).persist()
    rows = frame.count()
    verdicts: dict[str, dict[str, bool]] = {}
    timings: dict[str, dict[str, Any]] = {}

    def timed(tool: str, check: Any) -> None:
        def action(_: int) -> None:
            verdicts[tool] = check(frame)

        timings[tool] = measure(action, repeat)

    try:
        timed("suite", suite_check)
        # The same without the one rule that needs more than a look at each row, to say where the time goes.
        others = [spec for spec in RULES if spec["type"] != "uniqueness"]
        without_uniqueness = measure(lambda _: suite_check(frame, others), repeat)
        gx = GreatExpectations()
        timed("great_expectations", gx.check)
        if with_deequ:
            timed("deequ", lambda data: deequ_check(spark, data))
    finally:
        frame.unpersist()
        if own_session:
            if with_deequ:
                # PyDeequ starts py4j's callback server; left running, the process never ends.
                spark.sparkContext._gateway.shutdown_callback_server()
            spark.stop()

    suite_seconds = timings["suite"]["median"]
    rows_out = [
        {
            "case": tool,
            "seconds": round(timing["median"], 3),
            "spread": timing["spread"],
            "time_over_suite": round(timing["median"] / suite_seconds, 2),
            "rules_passed": f"{sum(verdicts[tool].values())} of {len(RULES)}",
            "failed": ", ".join(name for name, passed in verdicts[tool].items() if not passed) or "-",
        }
        for tool, timing in timings.items()
    ]
    if with_deequ:
        ratio = suite_seconds / timings["deequ"]["median"]
        met = ratio <= 1.0
        alone = without_uniqueness["median"]
        cause = (
            ""
            if met
            else (
                f"the uniqueness rule: the suite took {suite_seconds:.2f} s with it and {alone:.2f} s without it "
                f"(Deequ {timings['deequ']['median']:.2f} s with it). The suite counts the rule's failures as the rows "
                "less the distinct values in its counting pass (Spark aggregates by the value under the other rules' "
                "sums: a shuffle of the values), and reads a few keys of each failing rule's rows (one bounded read "
                "for the uniqueness rule, one for the others), which Deequ does not report"
            )
        )
        goal = target("the same rules against Deequ", "suite/Deequ time <= 1.0", ratio, met, cause)
    else:
        reason = (
            f"not measured on the {line.name} line: it has no Deequ build (stack.toml); run "
            "`make bench LINE=spark35 BENCH=quality_peers` for Deequ's numbers"
            if line.deequ is None
            else "not measured: the session was not the benchmark's own, so Deequ's jars are not on it"
        )
        goal = target("the same rules against Deequ", "suite/Deequ time <= 1.0", float("nan"), False, reason)
    result = {
        "summary": (
            f"{rows:,} cached rows on the {line.name} line, six rules ({', '.join(s['name'] for s in RULES)}); "
            f"median of {repeat} after a warm-up per tool; Great Expectations returns booleans only"
        ),
        "columns": ["seconds", "spread", "time_over_suite", "rules_passed", "failed"],
        "rows": rows_out,
        "verdicts": verdicts,
        "suite_without_uniqueness_seconds": without_uniqueness,
        "targets": [goal],
    }
    if results_dir is not None:
        record(f"quality_peers_{line.name}", f"make bench LINE={line.name} BENCH=quality_peers", result, results_dir)
    return result
