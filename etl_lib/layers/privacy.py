"""Personal data in silver: keyed hashes and masks.

The keyed hash is HMAC-SHA256 (RFC 2104) computed by Python's ``hmac`` in a pandas UDF. The key lives in the
UDF's closure, which Spark ships to its Python workers as opaque bytes: it appears in no query plan, Spark UI
page, event log or analysis error, as it would if it were written into the plan as a literal. Masks are plain
Spark expressions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import pandas_udf

from etl_lib.config import PiiTreatment
from etl_lib.errors import ConfigError
from etl_lib.layers import Step

#: Characters a mask leaves visible at the end of a value.
VISIBLE = 4


def keyed_hash(key: bytes) -> Callable[[Column], Column]:
    """Column function: HMAC-SHA256 of a text column's UTF-8 bytes under ``key``, as 64 lower-case hex digits.

    NULL stays NULL. Text Spark holds that is not valid UTF-8 is hashed as Python decodes it (with
    replacement characters), which the parsing steps never let through to silver.
    """

    def digest(value: str | None) -> str | None:
        if value is None:
            return None
        return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    @pandas_udf("string")  # type: ignore[call-overload, untyped-decorator]
    def hmac_sha256(values: pd.Series) -> pd.Series:
        return values.map(digest, na_action="ignore").astype(object).where(values.notna(), None)

    return hmac_sha256  # type: ignore[no-any-return]


def masked(value: Column) -> Column:
    """The text with every character but the last four starred; short values (four or fewer) starred whole."""
    return F.when(F.length(value) > VISIBLE, F.regexp_replace(value, rf"(?s).(?=.{{{VISIBLE}}})", "*")).otherwise(
        F.regexp_replace(value, "(?s).", "*")
    )


def protect_pii(treatments: Mapping[str, PiiTreatment], key: bytes | None) -> Step:
    """Step replacing each named column by its keyed hash or its mask, in place; other columns untouched.

    Raises:
        ConfigError: if a column is to be hashed and no key is given.
    """
    if key is None and "hash" in treatments.values():
        raise ConfigError("privacy.hash_key_secret: a keyed hash needs a key")
    hashed = keyed_hash(key) if key is not None else None

    def step(frame: DataFrame) -> DataFrame:
        replaced: dict[str, Column] = {}
        for column, treatment in treatments.items():
            if column in frame.columns:
                value = F.col(column)
                replaced[column] = hashed(value) if treatment == "hash" and hashed else masked(value)
        return frame.select(*[replaced[c].alias(c) if c in replaced else F.col(c) for c in frame.columns])

    return step


def pii_protection(treatments: Mapping[str, PiiTreatment], key: bytes | None) -> Step:
    """The step protecting an entity's personal columns (no step when there are none)."""
    if not treatments:
        return lambda frame: frame
    return protect_pii(treatments, key)
