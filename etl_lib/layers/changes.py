"""Change sets: what to insert, update and delete to turn one table into another, touching nothing else."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

ACTION = "_action"


def diff_rows(desired: DataFrame, current: DataFrame, keys: list[str]) -> DataFrame:
    """Rows that make ``current`` equal to ``desired``, each with ``_action`` insert, update or delete.

    Both frames cover the same scope (a whole table, or the rows of some keys). Rows equal in both are
    left out, so applying the result to an unchanged table writes nothing.

    Args:
        desired: what the rows should be.
        current: what they are now (same columns; extra columns are ignored).
        keys: columns identifying a row (compared null-safely).

    Returns:
        ``desired``'s columns plus ``_action``; deleted rows carry their current values.
    """
    columns = desired.columns
    values = [name for name in columns if name not in keys]
    want = desired.select(*keys, F.struct(*values).alias("_want"))
    have = current.select(*columns).select(
        *[F.col(k).alias(f"_have_{k}") for k in keys], F.struct(*values).alias("_have")
    )
    on = reduce(lambda left, right: left & right, [F.col(k).eqNullSafe(F.col(f"_have_{k}")) for k in keys])
    joined = want.join(have, on, "full_outer")
    action: Column = (
        F.when(F.col("_have").isNull(), F.lit("insert"))
        .when(F.col("_want").isNull(), F.lit("delete"))
        .when(~F.col("_want").eqNullSafe(F.col("_have")), F.lit("update"))
    )
    row = F.coalesce(F.col("_want"), F.col("_have"))
    return (
        joined.select(
            *[F.coalesce(F.col(k), F.col(f"_have_{k}")).alias(k) for k in keys],
            *[row.getField(name).alias(name) for name in values],
            action.alias(ACTION),
        )
        .where(F.col(ACTION).isNotNull())
        .select(*columns, ACTION)
    )
