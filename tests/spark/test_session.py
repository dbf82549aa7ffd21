"""The session the suite builds keeps what it compiles: a job's queries run again compile no code again."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

#: More distinct plans than Spark keeps the generated classes of by default (100), as a micro-batch has.
PLANS = 120


def compilations(spark: SparkSession) -> int:
    """Classes Spark's code generation has compiled in this JVM so far."""
    return int(spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME().getCount())  # type: ignore[union-attr]


def test_plans_run_again_compile_no_code_again(spark: SparkSession) -> None:
    numbers = spark.range(4)
    # Each literal is written into its plan's generated code, so each plan is a class of its own.
    plans = [numbers.select((F.col("id") * k + k).alias("v")).where(F.col("v") > k) for k in range(1, PLANS + 1)]
    first = compilations(spark)
    results = [plan.collect() for plan in plans]
    compiled = compilations(spark) - first
    assert compiled >= PLANS  # every plan compiled its own code the first time
    again = compilations(spark)
    assert [plan.collect() for plan in plans] == results
    # With Spark's default cache of 100 classes, the second pass would compile every one of them again.
    assert compilations(spark) - again == 0
