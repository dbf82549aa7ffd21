from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import Band, Bands
from etl_lib.layers import gold

SEGMENTS = Bands(bands=[Band(name="Low", upper=100), Band(name="Medium", upper=1000), Band(name="High")])
PROCESS_DATE = dt.date(2011, 3, 31)


def lines(spark: SparkSession) -> DataFrame:
    rows = [
        # customer c1: two purchase invoices, one return, one line after the process date
        ("536365", "c1", "United Kingdom", 10, "600.000", False, dt.datetime(2011, 1, 1, 10, 0)),
        ("536366", "c1", "United Kingdom", 5, "500.000", False, dt.datetime(2011, 2, 1, 10, 0)),
        ("C536367", "c1", "France", -2, "-120.000", True, dt.datetime(2011, 2, 2, 10, 0)),
        ("536999", "c1", "France", 1, "9999.000", False, dt.datetime(2011, 4, 2, 10, 0)),
        # customer c2: one small purchase
        ("536368", "c2", "EIRE", 3, "30.000", False, dt.datetime(2011, 3, 30, 9, 0)),
        # customer c3: only a cancellation
        ("C536369", "c3", "EIRE", -1, "-5.000", True, dt.datetime(2011, 3, 1, 9, 0)),
        # no customer: counts in revenue, not in customer features
        ("536370", None, "EIRE", 1, "2.000", False, dt.datetime(2011, 3, 30, 11, 0)),
    ]
    return (
        spark.createDataFrame(
            rows,
            "invoice_no STRING, customer_id STRING, country STRING, quantity INT, amount STRING, "
            "is_cancellation BOOLEAN, invoice_date TIMESTAMP",
        )
        .selectExpr("*", "CAST(amount AS DECIMAL(18,3)) AS amt", "to_date(invoice_date) AS invoice_day")
        .drop("amount")
        .withColumnRenamed("amt", "amount")
    )


def test_customer_features(spark: SparkSession) -> None:
    # c1's tenure is months_between(2011-03-31, 2011-01-01) = 2 + 30/31 months: 1100 / 2.9677 = 370.65 a month.
    features = lines(spark).transform(gold.customer_features(PROCESS_DATE, SEGMENTS))
    expected = spark.createDataFrame(
        [
            (
                "c1",
                "France",
                dt.datetime(2011, 1, 1, 10),
                dt.datetime(2011, 2, 1, 10),
                58,
                2,
                "980.000",
                89,
                "1100.000",
                "120.000",
                "370.65",
                0.133333,
                "High",
                PROCESS_DATE,
            ),
            (
                "c2",
                "EIRE",
                dt.datetime(2011, 3, 30, 9),
                dt.datetime(2011, 3, 30, 9),
                1,
                1,
                "30.000",
                1,
                "30.000",
                "0.000",
                "30.00",
                0.0,
                "Low",
                PROCESS_DATE,
            ),
            ("c3", "EIRE", None, None, None, 0, "-5.000", None, "0.000", "5.000", None, None, "Low", PROCESS_DATE),
        ],
        "customer_id STRING, country STRING, first_purchase_at TIMESTAMP, last_purchase_at TIMESTAMP, "
        "recency_days INT, frequency INT, monetary STRING, tenure_days INT, total_spend STRING, returns_amount STRING, "
        "avg_monthly_spend STRING, return_rate DOUBLE, customer_segment STRING, as_of DATE",
    ).selectExpr(
        "customer_id",
        "country",
        "first_purchase_at",
        "last_purchase_at",
        "recency_days",
        "frequency",
        "CAST(monetary AS DECIMAL(18,3)) AS monetary",
        "tenure_days",
        "CAST(total_spend AS DECIMAL(18,3)) AS total_spend",
        "CAST(returns_amount AS DECIMAL(18,3)) AS returns_amount",
        "CAST(avg_monthly_spend AS DECIMAL(18,2)) AS avg_monthly_spend",
        "return_rate",
        "customer_segment",
        "as_of",
    )
    assert_df_equality(features, expected, ignore_nullable=True, ignore_row_order=True)


def test_daily_revenue(spark: SparkSession) -> None:
    revenue = lines(spark).transform(gold.daily_revenue(PROCESS_DATE))
    expected = spark.createDataFrame(
        [
            (dt.date(2011, 1, 1), "United Kingdom", "600.000", "0.000", "600.000", 1, 1, 1, 10),
            (dt.date(2011, 2, 1), "United Kingdom", "500.000", "0.000", "500.000", 1, 1, 1, 5),
            (dt.date(2011, 2, 2), "France", "0.000", "120.000", "-120.000", 0, 1, 1, 0),
            (dt.date(2011, 3, 1), "EIRE", "0.000", "5.000", "-5.000", 0, 1, 1, 0),
            (dt.date(2011, 3, 30), "EIRE", "32.000", "0.000", "32.000", 2, 1, 2, 4),
        ],
        "invoice_day DATE, country STRING, revenue STRING, returns STRING, net_revenue STRING, orders INT, "
        "customers INT, lines INT, quantity BIGINT",
    ).selectExpr(
        "invoice_day",
        "country",
        "CAST(revenue AS DECIMAL(18,3)) AS revenue",
        "CAST(returns AS DECIMAL(18,3)) AS returns",
        "CAST(net_revenue AS DECIMAL(18,3)) AS net_revenue",
        "orders",
        "customers",
        "lines",
        "quantity",
    )
    assert_df_equality(revenue, expected, ignore_nullable=True, ignore_row_order=True)
