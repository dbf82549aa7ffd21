"""Personal data in silver: the keyed hash equals RFC 2104 HMAC-SHA256 and its key shows in no plan, masks keep
the last four characters."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.errors import ConfigError
from etl_lib.layers.privacy import protect_pii

KEY = b"pii-key-for-tests"
LONG_KEY = b"k" * 100  # longer than SHA-256's block: hashed first, as RFC 2104 says
VALUES = ["17850", "", "émile@exemple.fr", "名前", "a\x00b", "x" * 1000, None]


def reference_hmac(key: bytes, value: str | None) -> str | None:
    return None if value is None else hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


@pytest.mark.parametrize("key", [KEY, LONG_KEY])
def test_keyed_hash_is_hmac_sha256_and_mask_keeps_the_last_four(spark: SparkSession, key: bytes) -> None:
    frame = spark.createDataFrame(
        [(i, v, v, 7) for i, v in enumerate(VALUES)], "n INT, customer_id STRING, ua STRING, q INT"
    )
    protected = frame.transform(protect_pii({"customer_id": "hash", "ua": "mask"}, key))
    masks = ["*7850", "", "************e.fr", "**", "***", "*" * 996 + "xxxx", None]
    expected = spark.createDataFrame(
        [(i, reference_hmac(key, v), m, 7) for i, (v, m) in enumerate(zip(VALUES, masks, strict=True))],
        "n INT, customer_id STRING, ua STRING, q INT",
    )
    assert_df_equality(protected, expected, ignore_row_order=True, ignore_nullable=True)


def test_columns_not_named_are_untouched_and_hashing_needs_a_key(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("a", "b")], "x STRING, y STRING")
    assert_df_equality(frame.transform(protect_pii({"absent": "mask"}, None)), frame)
    with pytest.raises(ConfigError, match="a keyed hash needs a key"):
        protect_pii({"x": "hash"}, None)


def test_the_key_is_in_no_query_plan(spark: SparkSession) -> None:
    frame = spark.createDataFrame([("17850",)], "customer_id STRING").transform(
        protect_pii({"customer_id": "hash"}, KEY)
    )
    plans = frame._jdf.queryExecution().toString()
    padded = KEY.ljust(64, b"\0")
    for text in (KEY, bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)):
        assert text.hex() not in plans.lower()
        assert text.decode("latin-1") not in plans
    assert frame.first() == (reference_hmac(KEY, "17850"),)
