from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import Band, Bands, Scd2Config
from etl_lib.layers import dimensions
from etl_lib.layers.changes import diff_rows

PRICES = Bands(bands=[Band(name="Budget", upper=50), Band(name="Mid-range", upper=200), Band(name="Premium")])
SCD2 = Scd2Config(keys=["customer_id"], sequence_by="invoice_date", tracked=["country"])
HISTORY = (
    "customer_id STRING, country STRING, effective_from TIMESTAMP, effective_to TIMESTAMP, "
    "is_current BOOLEAN, observed_until TIMESTAMP"
)


def t(day: int) -> dt.datetime:
    return dt.datetime(2011, 1, day, 12, 0)


@pytest.mark.parametrize("right", [True, False])
def test_a_value_on_an_edge_falls_where_pandas_cut_puts_it(spark: SparkSession, right: bool) -> None:
    # The seed bins prices with pandas.cut(bins=[0, 50, 200, inf]): its banding is the reference, on either side.
    bands = PRICES.model_copy(update={"right": right})
    values = [0.01, 49.99, 50.0, 50.01, 199.99, 200.0, 200.01, 1e6]
    seed = pd.cut(values, bins=[0, 50, 200, float("inf")], labels=bands.names, right=right)
    prices = spark.createDataFrame([(value,) for value in [*values, None]], "price DOUBLE")
    banded = prices.select("price", dimensions.band(F.col("price"), bands).alias("category"))
    expected = spark.createDataFrame(
        [*zip(values, [str(name) for name in seed], strict=True), (None, None)], "price DOUBLE, category STRING"
    )
    assert_df_equality(banded, expected, ignore_nullable=True)


def test_the_first_band_has_no_lower_edge(spark: SparkSession) -> None:
    # pandas.cut gives a value at or below the seed's first edge (0) no band; the suite gives it the first band.
    assert pd.isna(pd.cut([0.0], bins=[0, 50, 200, float("inf")])[0])
    prices = spark.createDataFrame([(0.0,), (-3.5,)], "price DOUBLE")
    banded = prices.select(dimensions.band(F.col("price"), PRICES).alias("category"))
    assert [row["category"] for row in banded.collect()] == ["Budget", "Budget"]


def order_lines(spark: SparkSession, rows: list[tuple[object, ...]]) -> DataFrame:
    return spark.createDataFrame(
        rows,
        "stock_code STRING, description STRING, unit_price STRING, is_cancellation BOOLEAN, invoice_date TIMESTAMP",
    ).selectExpr(
        "stock_code",
        "description",
        "CAST(unit_price AS DECIMAL(12,3)) AS unit_price",
        "is_cancellation",
        "invoice_date",
        "'product' AS stock_code_class",
        "true AS is_product",
    )


def test_products_take_the_latest_description_and_sellable_price_in_any_arrival_order(spark: SparkSession) -> None:
    early = order_lines(spark, [("22423", "REGENCY CAKESTAND", "12.750", False, t(1))])
    late = order_lines(
        spark,
        [
            ("22423", "REGENCY CAKESTAND 3 TIER", "210.000", False, t(5)),
            ("22423", None, "0.000", False, t(6)),  # no description, free: neither is current
            ("22423", "REGENCY CAKESTAND 3 TIER", "-12.750", True, t(7)),  # a cancellation sets no price
        ],
    )

    def build(first: DataFrame, second: DataFrame) -> DataFrame:
        existing = dimensions.combine_products(dimensions.product_snapshots(first), PRICES)
        return dimensions.combine_products(existing.unionByName(dimensions.product_snapshots(second)), PRICES)

    in_order, reversed_order = build(early, late), build(late, early)
    expected = spark.createDataFrame(
        [("22423", "REGENCY CAKESTAND 3 TIER", "210.000", "Premium", "product", True, t(1), t(7), t(7), t(5))],
        "stock_code STRING, description STRING, unit_price STRING, price_category STRING, stock_code_class STRING, "
        "is_product BOOLEAN, first_seen_at TIMESTAMP, last_seen_at TIMESTAMP, description_seen_at TIMESTAMP, "
        "price_seen_at TIMESTAMP",
    ).withColumn("unit_price", F.col("unit_price").cast("decimal(12,3)"))
    assert_df_equality(in_order, expected, ignore_nullable=True)
    assert_df_equality(reversed_order, expected, ignore_nullable=True)


def observations(spark: SparkSession, rows: list[tuple[str, dt.datetime, str]]) -> DataFrame:
    return spark.createDataFrame(rows, "customer_id STRING, invoice_date TIMESTAMP, country STRING")


def empty(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame([], HISTORY)


def test_scd2_opens_a_version_per_change_and_collapses_repeats(spark: SparkSession) -> None:
    seen = observations(
        spark,
        [("c1", t(1), "UK"), ("c1", t(2), "UK"), ("c1", t(5), "France"), ("c1", t(9), "UK"), ("c2", t(3), "EIRE")],
    )
    history = dimensions.scd2_history(seen, empty(spark), SCD2)
    expected = spark.createDataFrame(
        [
            ("c1", "UK", t(1), t(5), False, t(2)),
            ("c1", "France", t(5), t(9), False, t(5)),
            ("c1", "UK", t(9), None, True, t(9)),
            ("c2", "EIRE", t(3), None, True, t(3)),
        ],
        HISTORY,
    )
    assert_df_equality(history, expected, ignore_nullable=True, ignore_row_order=True)


def test_scd2_places_late_observations_in_history_and_is_idempotent(spark: SparkSession) -> None:
    first = dimensions.scd2_history(
        observations(spark, [("c1", t(1), "UK"), ("c1", t(5), "France"), ("c1", t(6), "France"), ("c1", t(9), "UK")]),
        empty(spark),
        SCD2,
    )
    # Arriving later, but older than the current version: it splits France's version, it does not become current.
    late = observations(spark, [("c1", t(3), "Spain"), ("c1", t(5) + dt.timedelta(hours=1), "Germany")])
    merged = dimensions.scd2_history(late, first, SCD2)
    expected = spark.createDataFrame(
        [
            ("c1", "UK", t(1), t(3), False, t(1)),
            ("c1", "Spain", t(3), t(5), False, t(3)),
            ("c1", "France", t(5), t(5) + dt.timedelta(hours=1), False, t(5)),
            ("c1", "Germany", t(5) + dt.timedelta(hours=1), t(6), False, t(5) + dt.timedelta(hours=1)),
            # France was still observed on day 6, after the late Germany observation.
            ("c1", "France", t(6), t(9), False, t(6)),
            ("c1", "UK", t(9), None, True, t(9)),
        ],
        HISTORY,
    )
    assert_df_equality(merged, expected, ignore_nullable=True, ignore_row_order=True)

    again = dimensions.scd2_history(late, merged, SCD2)
    assert_df_equality(again, merged, ignore_nullable=True, ignore_row_order=True)
    assert diff_rows(again, merged, ["customer_id", "effective_from"]).count() == 0


def test_scd2_type1_attributes_take_the_latest_value_on_every_version(spark: SparkSession) -> None:
    scd2 = Scd2Config(keys=["customer_id"], sequence_by="invoice_date", tracked=["country"], type1=["email"])
    seen = spark.createDataFrame(
        [("c1", t(1), "UK", "a@x"), ("c1", t(4), "France", "b@x")],
        "customer_id STRING, invoice_date TIMESTAMP, country STRING, email STRING",
    )
    history = dimensions.scd2_history(seen, dimensions.empty_history(seen, scd2), scd2)
    assert sorted((r["country"], r["email"], r["is_current"]) for r in history.collect()) == [
        ("France", "b@x", True),
        ("UK", "b@x", False),
    ]


def test_diff_rows_names_only_what_changes(spark: SparkSession) -> None:
    current = spark.createDataFrame([("a", 1), ("b", 2), ("c", 3), (None, 4)], "k STRING, v INT")
    desired = spark.createDataFrame([("a", 1), ("b", 20), ("d", 4), (None, 4)], "k STRING, v INT")
    changes = diff_rows(desired, current, ["k"])
    expected = spark.createDataFrame(
        [("b", 20, "update"), ("c", 3, "delete"), ("d", 4, "insert")], "k STRING, v INT, _action STRING"
    )
    assert_df_equality(changes, expected, ignore_nullable=True, ignore_row_order=True)
