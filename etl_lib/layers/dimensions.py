"""Silver dimensions: products (current description and price) and customers (Type 2 history).

Both are built from increments of order lines and are order-independent: feeding the same lines again,
or older lines after newer ones, gives the same dimension.
"""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from etl_lib.config import Bands, Scd2Config

EFFECTIVE_FROM = "effective_from"
EFFECTIVE_TO = "effective_to"
IS_CURRENT = "is_current"
#: The last sequence value observed while a version was current; it keeps late observations exact.
OBSERVED_UNTIL = "observed_until"


def band(value: Column, bands: Bands) -> Column:
    """Name of the band ``value`` falls in (a value on an edge as ``bands.right`` says); NULL for a NULL value."""
    result = F.when(value.isNull(), F.lit(None).cast("string"))
    for item in bands.bands[:-1]:
        edge = F.lit(item.upper)
        result = result.when(value <= edge if bands.right else value < edge, F.lit(item.name))
    return result.otherwise(F.lit(bands.bands[-1].name))


PRODUCT_COLUMNS = (
    "stock_code",
    "description",
    "unit_price",
    "price_category",
    "stock_code_class",
    "is_product",
    "first_seen_at",
    "last_seen_at",
    "description_seen_at",
    "price_seen_at",
)


def product_snapshots(order_lines: DataFrame) -> DataFrame:
    """Per stock code, what some order lines say about it (unbanded; see :func:`combine_products`).

    The current description is the latest non-empty one; the current price the latest positive price
    of a line that is not a cancellation. "Latest" orders by invoice time, then by the value itself, so
    the result never depends on the order lines arrive in.
    """
    sellable = ~F.col("is_cancellation") & (F.col("unit_price") > 0)
    described = F.col("description").isNotNull()
    latest_description = F.max(
        F.when(described, F.struct(F.col("invoice_date").alias("at"), F.col("description").alias("v")))
    )
    latest_price = F.max(F.when(sellable, F.struct(F.col("invoice_date").alias("at"), F.col("unit_price").alias("v"))))
    return (
        order_lines.groupBy("stock_code")
        .agg(
            latest_description.getField("v").alias("description"),
            latest_price.getField("v").alias("unit_price"),
            F.lit(None).cast("string").alias("price_category"),
            F.max("stock_code_class").alias("stock_code_class"),
            F.max(F.col("is_product").cast("int")).cast("boolean").alias("is_product"),
            F.min("invoice_date").alias("first_seen_at"),
            F.max("invoice_date").alias("last_seen_at"),
            latest_description.getField("at").alias("description_seen_at"),
            latest_price.getField("at").alias("price_seen_at"),
        )
        .select(*PRODUCT_COLUMNS)
    )


def combine_products(snapshots: DataFrame, price_categories: Bands) -> DataFrame:
    """Merge product rows (existing dimension rows and new snapshots) into one row per stock code."""
    description = F.max(F.struct(F.col("description_seen_at").alias("at"), F.col("description").alias("v")))
    price = F.max(F.struct(F.col("price_seen_at").alias("at"), F.col("unit_price").alias("v")))
    combined = snapshots.groupBy("stock_code").agg(
        description.getField("v").alias("description"),
        price.getField("v").alias("unit_price"),
        F.max("stock_code_class").alias("stock_code_class"),
        F.max(F.col("is_product").cast("int")).cast("boolean").alias("is_product"),
        F.min("first_seen_at").alias("first_seen_at"),
        F.max("last_seen_at").alias("last_seen_at"),
        F.max("description_seen_at").alias("description_seen_at"),
        F.max("price_seen_at").alias("price_seen_at"),
    )
    return combined.withColumn("price_category", band(F.col("unit_price"), price_categories)).select(*PRODUCT_COLUMNS)


def customer_observations(order_lines: DataFrame, scd2: Scd2Config) -> DataFrame:
    """What order lines say about customers: keys, sequence and attributes, one row per distinct observation."""
    columns = [*scd2.keys, scd2.sequence_by, *scd2.tracked, *scd2.type1]
    keyed = reduce(lambda frame, key: frame.where(F.col(key).isNotNull()), scd2.keys, order_lines)
    return keyed.select(*columns).dropDuplicates()


def _points(
    observations: DataFrame, existing: DataFrame, keys: list[str], sequence: str, attributes: list[str]
) -> DataFrame:
    """Every point of the history of the observed keys, as ``_seq``.

    The points are each observation, and where each existing version started and was last observed.
    """
    prior = existing.join(observations.select(*keys).distinct(), keys, "left_semi")
    return reduce(
        DataFrame.unionByName,
        [
            observations.select(*keys, F.col(sequence).alias("_seq"), *attributes),
            prior.select(*keys, F.col(EFFECTIVE_FROM).alias("_seq"), *attributes),
            prior.select(*keys, F.col(OBSERVED_UNTIL).alias("_seq"), *attributes),
        ],
    )


def scd2_history(observations: DataFrame, existing: DataFrame, scd2: Scd2Config) -> DataFrame:
    """The full Type 2 history of every key in ``observations``, merged with what ``existing`` holds.

    A new version starts where a tracked attribute changes along the sequence; equal consecutive
    values collapse. Existing versions contribute where they started and the last point they were
    observed, so observations arriving late (older than the current version) land in the right place
    of history instead of becoming current. Type 1 attributes take their latest value on every version.

    Args:
        observations: keys, ``sequence_by``, tracked and Type 1 attributes.
        existing: the dimension's current rows for (at least) the same keys.
        scd2: keys, sequence and attribute lists.

    Returns:
        Keys, tracked and Type 1 attributes, ``effective_from``, ``effective_to`` (NULL while current),
        ``is_current`` and ``observed_until``, for the keys of ``observations`` only.
    """
    keys, sequence, tracked, type1 = scd2.keys, scd2.sequence_by, scd2.tracked, scd2.type1
    attributes = [*tracked, *type1]
    points = _points(observations, existing, keys, sequence, attributes)
    # Two observations at the same point with different values: keep one, the same one every time.
    at_point = points.groupBy(*keys, "_seq").agg(
        F.max(F.struct(F.struct(*tracked).alias("_state"), *type1)).alias("_p")
    )
    ordered = Window.partitionBy(*keys).orderBy("_seq")
    marked = at_point.select(
        *keys, "_seq", F.col("_p._state").alias("_state"), *[F.col(f"_p.{c}").alias(c) for c in type1]
    )
    # A version starts at the first point of a key and wherever the tracked state differs from the point before.
    starts = ~F.lag("_state").over(ordered).eqNullSafe(F.col("_state"))
    marked = marked.withColumn(
        "_version", F.sum(starts.cast("int")).over(ordered.rowsBetween(Window.unboundedPreceding, 0))
    )
    versions = marked.groupBy(*keys, "_version").agg(
        F.min("_seq").alias(EFFECTIVE_FROM),
        F.max("_seq").alias(OBSERVED_UNTIL),
        F.max("_state").alias("_state"),
    )
    history = versions.withColumn(
        EFFECTIVE_TO, F.lead(EFFECTIVE_FROM).over(Window.partitionBy(*keys).orderBy(EFFECTIVE_FROM))
    )
    if type1:
        latest = marked.groupBy(*keys).agg(F.max(F.struct("_seq", *type1)).alias("_latest"))
        history = history.join(latest, keys)
    return history.select(
        *keys,
        *[F.col("_state").getField(c).alias(c) for c in tracked],
        *[F.col("_latest").getField(c).alias(c) for c in type1],
        F.col(EFFECTIVE_FROM),
        F.col(EFFECTIVE_TO),
        F.col(EFFECTIVE_TO).isNull().alias(IS_CURRENT),
        F.col(OBSERVED_UNTIL),
    )


def empty_history(observations: DataFrame, scd2: Scd2Config) -> DataFrame:
    """An empty frame with the columns and types :func:`scd2_history` returns for ``observations``."""
    sequence = F.col(scd2.sequence_by)
    return observations.limit(0).select(
        *scd2.keys,
        *scd2.tracked,
        *scd2.type1,
        sequence.alias(EFFECTIVE_FROM),
        sequence.alias(EFFECTIVE_TO),
        F.lit(True).alias(IS_CURRENT),
        sequence.alias(OBSERVED_UNTIL),
    )
