"""Gold: per-customer features and revenue by day and country, as of a process date."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl_lib.config import Bands
from etl_lib.layers import Step
from etl_lib.layers.dimensions import band

CUSTOMER_FEATURE_KEYS = ["customer_id"]
DAILY_REVENUE_KEYS = ["invoice_day", "country"]


def as_of(process_date: dt.date) -> Step:
    """Step keeping the order lines of ``process_date`` and before."""

    def step(order_lines: DataFrame) -> DataFrame:
        return order_lines.where(F.col("invoice_day") <= F.lit(process_date))

    return step


def customer_features(process_date: dt.date, segments: Bands) -> Step:
    """Step computing one row of features per customer from their order lines up to ``process_date``.

    Purchases are lines that are not cancellations; returns are cancellation lines. ``recency_days`` and
    ``tenure_days`` count from the last and first purchase to the process date; ``total_spend`` is what
    purchases came to, ``monetary`` the same net of returns; ``avg_monthly_spend`` spreads total spend
    over the months of tenure (Spark's ``months_between``, at least one); ``return_rate`` is returned over
    purchased quantity; the segment bands total spend.
    """

    def step(order_lines: DataFrame) -> DataFrame:
        purchase = ~F.col("is_cancellation")
        cancel = F.col("is_cancellation")
        zero = F.lit(0).cast("decimal(18,3)")
        per_customer = (
            order_lines.transform(as_of(process_date))
            .where(F.col("customer_id").isNotNull())
            .groupBy("customer_id")
            .agg(
                F.max(F.struct("invoice_date", "country")).getField("country").alias("country"),
                F.min(F.when(purchase, F.col("invoice_date"))).alias("first_purchase_at"),
                F.max(F.when(purchase, F.col("invoice_date"))).alias("last_purchase_at"),
                F.countDistinct(F.when(purchase, F.col("invoice_no"))).alias("frequency"),
                F.coalesce(F.sum(F.when(purchase, F.col("amount"))), zero).alias("total_spend"),
                F.coalesce(-F.sum(F.when(cancel, F.col("amount"))), zero).alias("returns_amount"),
                F.sum(F.when(purchase & (F.col("quantity") > 0), F.col("quantity"))).alias("_bought"),
                F.coalesce(-F.sum(F.when(cancel, F.col("quantity"))), F.lit(0)).alias("_returned"),
            )
        )
        day = F.lit(process_date)
        months = F.greatest(F.lit(1.0), F.months_between(day, F.to_date("first_purchase_at")))
        return per_customer.select(
            "customer_id",
            "country",
            "first_purchase_at",
            "last_purchase_at",
            F.datediff(day, F.to_date("last_purchase_at")).alias("recency_days"),
            F.col("frequency").cast("int").alias("frequency"),
            (F.col("total_spend") - F.col("returns_amount")).cast("decimal(18,3)").alias("monetary"),
            F.datediff(day, F.to_date("first_purchase_at")).alias("tenure_days"),
            F.col("total_spend").cast("decimal(18,3)").alias("total_spend"),
            F.col("returns_amount").cast("decimal(18,3)").alias("returns_amount"),
            F.when(F.col("first_purchase_at").isNotNull(), (F.col("total_spend") / months).cast("decimal(18,2)")).alias(
                "avg_monthly_spend"
            ),
            F.when(F.col("_bought") > 0, F.round(F.col("_returned") / F.col("_bought"), 6)).alias("return_rate"),
            band(F.col("total_spend"), segments).alias("customer_segment"),
            F.lit(process_date).alias("as_of"),
        )

    return step


def daily_revenue(process_date: dt.date) -> Step:
    """Step computing revenue per invoice day and country up to ``process_date``.

    ``revenue`` is what purchases came to, ``returns`` what cancellations took back, ``net_revenue`` the
    difference; ``orders`` counts purchase invoices, ``customers`` distinct known customers.
    """

    def step(order_lines: DataFrame) -> DataFrame:
        purchase = ~F.col("is_cancellation")
        zero = F.lit(0).cast("decimal(18,3)")
        return (
            order_lines.transform(as_of(process_date))
            .groupBy(*DAILY_REVENUE_KEYS)
            .agg(
                F.coalesce(F.sum(F.when(purchase, F.col("amount"))), zero).cast("decimal(18,3)").alias("revenue"),
                F.coalesce(-F.sum(F.when(~purchase, F.col("amount"))), zero).cast("decimal(18,3)").alias("returns"),
                F.sum("amount").cast("decimal(18,3)").alias("net_revenue"),
                F.countDistinct(F.when(purchase, F.col("invoice_no"))).cast("int").alias("orders"),
                F.countDistinct("customer_id").cast("int").alias("customers"),
                F.count(F.lit(1)).cast("int").alias("lines"),
                F.coalesce(F.sum(F.when(purchase, F.col("quantity"))), F.lit(0)).cast("bigint").alias("quantity"),
            )
        )

    return step
