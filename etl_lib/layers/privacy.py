"""Personal data in silver: keyed hashes and masks, as Spark expressions (no Python worker).

The keyed hash is HMAC-SHA256 (RFC 2104) built from Spark's own ``sha2`` over binary concatenations, so it
runs in the JVM at the speed of the rest of the projection and equals ``hmac.new(key, value, sha256)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl_lib.config import PiiTreatment, SuiteConfig
from etl_lib.platform import secrets

Step = Callable[[DataFrame], DataFrame]

_BLOCK = 64  # SHA-256's block size in bytes
#: Characters a mask leaves visible at the end of a value.
VISIBLE = 4


def keyed_hash(value: Column, key: bytes) -> Column:
    """HMAC-SHA256 of a text column's UTF-8 bytes under ``key``, as 64 lower-case hex digits (NULL stays NULL)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    inner_pad = bytes(b ^ 0x36 for b in padded)
    outer_pad = bytes(b ^ 0x5C for b in padded)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), value.cast("binary")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def masked(value: Column) -> Column:
    """The text with every character but the last four starred; short values (four or fewer) starred whole."""
    return F.when(F.length(value) > VISIBLE, F.regexp_replace(value, rf"(?s).(?=.{{{VISIBLE}}})", "*")).otherwise(
        F.regexp_replace(value, "(?s).", "*")
    )


def protect_pii(treatments: Mapping[str, PiiTreatment], key: bytes | None) -> Step:
    """Step replacing each named column by its keyed hash or its mask, in place; other columns untouched.

    Raises:
        ValueError: if a column is to be hashed and no key is given.
    """
    if key is None and "hash" in treatments.values():
        raise ValueError("a keyed hash needs a key")

    def step(frame: DataFrame) -> DataFrame:
        replaced: dict[str, Column] = {}
        for column, treatment in treatments.items():
            if column in frame.columns:
                value = F.col(column)
                replaced[column] = keyed_hash(value, key or b"") if treatment == "hash" else masked(value)
        return frame.select(*[replaced[c].alias(c) if c in replaced else F.col(c) for c in frame.columns])

    return step


def pii_protection(config: SuiteConfig, entity: str) -> Step:
    """The step protecting ``entity``'s personal columns as ``privacy.pii`` says (no step when it names none).

    Raises:
        ConfigError: if the hash key's secret cannot be read.
    """
    treatments = config.privacy.pii.get(entity, {})
    if not treatments:
        return lambda frame: frame
    key = None
    if "hash" in treatments.values() and config.privacy.hash_key_secret:
        key = secrets.resolve(config.privacy.hash_key_secret, config, "privacy.hash_key_secret").encode("utf-8")
    return protect_pii(treatments, key)
