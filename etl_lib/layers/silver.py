"""Silver: extracts typed to their entity, checked, cleaned and deduplicated.

Every function here is a pure ``DataFrame -> DataFrame`` step; reading and writing live elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl_lib.config import EntityConfig
from etl_lib.layers import Step
from etl_lib.layers.privacy import keyed_hash

#: The columns a row that failed checks carries into the rejects table.
ERRORS = "_errors"
RECORD = "_record"
#: Inside :func:`to_entity`: the extract row as a struct, until the errors say whether ``_record`` is needed.
_EXTRACT_ROW = "_extract_row"
#: Key of an order line: a digest of every value of the extract row, so exact duplicates share it.
LINE_ID = "line_id"

REJECT_COLUMNS = ("table", "source", "record", "reasons", "run_id", "rejected_at")


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _reason(rule: str, column: str, message: Column) -> Column:
    return F.struct(F.lit(rule).alias("rule"), F.lit(column).alias("column"), message.alias("message"))


#: The types a source column's ``format`` reads text into.
_DATETIME_TYPES = ("timestamp", "timestamp_ntz", "date")


def _typed(raw: Column, source_column: str, type_name: str, pattern: str | None) -> Column:
    if pattern is not None and type_name in _DATETIME_TYPES:
        parsed = F.try_to_timestamp(raw.cast("string"), F.lit(pattern))
        return F.to_date(parsed) if type_name == "date" else parsed.cast(type_name)
    # try_cast gives NULL instead of failing the whole job (Spark 4 runs ANSI SQL) on one bad value.
    return F.expr(f"try_cast({_quoted(source_column)} AS {type_name})")


def _typed_column(
    name: str, type_name: str, source: str, pattern: str | None, refusal: Column | None
) -> tuple[Column, list[Column]]:
    """Entity column ``name`` read from extract column ``source``, and its reasons: ``type``, then ``required``.

    The ``required`` reason is the caller's to keep (for a required column) or drop.
    """
    raw = F.col(_quoted(source))
    value = _typed(raw, source, type_name, pattern)
    if type_name == "string":
        value = F.when(F.trim(value) != "", value)  # a blank text is a missing value
    # A text date or time read with the source's format names the format tried.
    tried = f" with format {pattern}" if pattern is not None and type_name in _DATETIME_TYPES else ""
    unreadable = F.when(
        raw.isNotNull() & value.isNull() & (F.trim(raw.cast("string")) != ""),
        F.concat(F.lit("cannot read "), F.to_json(F.struct(raw.alias(source))), F.lit(f" as {type_name}{tried}")),
    )
    # A refusal appears once in the errors: a filter on the errors copies in all they refer to.
    typed = (value if refusal is None else F.when(refusal.isNull(), value)).alias(name)
    wrong_type = _reason("type", name, unreadable if refusal is None else F.coalesce(refusal, unreadable))
    missing = F.when(
        value.isNull() & (raw.isNull() | (F.trim(raw.cast("string")) == "")),
        _reason("required", name, F.lit("is missing")),
    )
    return typed, [wrong_type, missing]


def _required_when(entity: EntityConfig, columns: Mapping[str, str]) -> list[Column]:
    """The ``required`` reasons of columns needed for some values of another (``entities.*.required_when``)."""
    reasons: list[Column] = []
    for selector, by_value in entity.required_when.items():
        chosen = _typed(F.col(_quoted(columns[selector])), columns[selector], entity.columns[selector], None)
        for selector_value, needed in by_value.items():
            for name in needed:
                raw = F.col(_quoted(columns[name]))
                missing = raw.isNull() | (F.trim(raw.cast("string")) == "")
                message = f"is missing (required when {selector} is {selector_value})"
                reasons.append(
                    F.when((chosen == F.lit(selector_value)) & missing, _reason("required", name, F.lit(message)))
                )
    return reasons


def to_entity(
    entity: EntityConfig,
    columns: Mapping[str, str],
    formats: Mapping[str, str] | None = None,
    keep: tuple[str, ...] = ("_source",),
    refused: Mapping[str, Column] | None = None,
) -> Step:
    """Step typing an extract's columns into an entity's, recording what failed instead of failing.

    Args:
        entity: the entity's columns, types and required columns.
        columns: entity column -> extract column.
        formats: entity column -> datetime pattern for text timestamps and dates.
        keep: extract columns carried through unchanged (ingestion metadata).
        refused: entity column -> a message, non-NULL where the extract's value is of a kind the column does
            not take (a JSON object for a string column). It is then the column's ``type`` reason instead of a
            failed cast, and the value is not kept. A refused value is never blank, so never missing either.

    Returns:
        A step giving the entity's typed columns, ``_errors`` (an array of ``{rule, column, message}``,
        empty for a good row), ``_record`` (the extract row as JSON for a row with errors, NULL for a good
        row) and the ``keep`` columns.
    """
    patterns = dict(formats or {})
    refusals = dict(refused or {})
    # Built once, not for every frame: each Column operation is a call to the JVM, and a speed-layer
    # micro-batch would otherwise spend a third of a second of the driver's time building the same columns.
    typed: list[Column] = []
    errors: list[Column] = []
    for name, type_name in entity.columns.items():
        value, reasons = _typed_column(name, type_name, columns[name], patterns.get(name), refusals.get(name))
        typed.append(value)
        errors.extend(reasons if name in entity.required else reasons[:1])
    errors.extend(_required_when(entity, columns))
    extract_row = F.struct(*[F.col(_quoted(source)) for source in dict.fromkeys(columns.values())])
    failures = F.filter(F.array(*errors), lambda reason: reason.getField("message").isNotNull()).alias(ERRORS)
    # Only a rejected row needs its extract row as JSON: writing it for every row would make the typed rows
    # (which a micro-batch caches) several times larger.
    record = F.when(has_errors(), F.to_json(_EXTRACT_ROW)).alias(RECORD)

    def step(frame: DataFrame) -> DataFrame:
        present = [name for name in keep if name in frame.columns]
        # The extract row is kept in a struct: its fields may differ from the typed columns only in case.
        checked = frame.select(*typed, failures, extract_row.alias(_EXTRACT_ROW), *present)
        return checked.select(*entity.columns, ERRORS, record, *present)

    return step


def has_errors() -> Column:
    """True for a checked row that failed a check (its ``_errors`` is never NULL: the reasons that apply)."""
    return F.size(ERRORS) > 0


def no_errors() -> Column:
    """True for a checked row that passed every check: the complement of :func:`has_errors`."""
    return F.size(ERRORS) == 0


def accepted(frame: DataFrame) -> DataFrame:
    """Rows of a :func:`to_entity` result that passed every check, without the check columns."""
    return frame.where(no_errors()).drop(ERRORS, RECORD)


def rejected(target: str, run_id: str, rejected_at: dt.datetime) -> Step:
    """Step turning the failed rows of a :func:`to_entity` result into rows of the rejects table.

    Args:
        target: the table the rows were meant for, as ``<layer>/<table>`` (``silver/order_lines``).
        run_id: the run that rejected them.
        rejected_at: when they were rejected (the run's time).
    """

    def step(frame: DataFrame) -> DataFrame:
        source = F.col("_source") if "_source" in frame.columns else F.lit(None).cast("string")
        return frame.where(has_errors()).select(
            F.lit(target).alias("table"),
            source.alias("source"),
            F.col(RECORD).alias("record"),
            F.col(ERRORS).alias("reasons"),
            F.lit(run_id).alias("run_id"),
            F.lit(rejected_at).cast("timestamp").alias("rejected_at"),
        )

    return step


def with_line_id(entity_columns: list[str], key: bytes | None = None) -> Step:
    """Step adding ``line_id``: a digest of the typed values, equal for exact duplicates only.

    It is SHA-256, or HMAC-SHA256 under ``key`` when the entity has personal columns: a plain digest of a row
    whose other values are known would let anyone test guesses of the personal ones.
    """

    def step(frame: DataFrame) -> DataFrame:
        row = F.to_json(F.struct(*[F.col(name) for name in entity_columns]))
        digest = keyed_hash(key)(row) if key is not None else F.sha2(row, 256)
        return frame.select(digest.alias(LINE_ID), *frame.columns)

    return step


def stock_code_class(stock_code: Column, product_pattern: str, non_product_codes: Mapping[str, str]) -> Column:
    """``product`` for product codes, else the first class whose pattern matches, else ``other_non_product``.

    Args:
        stock_code: the stock code column.
        product_pattern: a Java regular expression matching product codes (searched for, not anchored).
        non_product_codes: class name -> Java regular expression, tried in order.
    """
    result = F.when(stock_code.rlike(product_pattern), F.lit("product"))
    for name, pattern in non_product_codes.items():
        result = result.when(stock_code.rlike(pattern), F.lit(name))
    return result.otherwise(F.lit("other_non_product"))


def clean_order_lines(product_pattern: str, non_product_codes: Mapping[str, str]) -> Step:
    """Step cleaning typed order lines.

    Descriptions are trimmed, cancellations (invoices starting with ``C``) flagged, stock codes classified
    as product or which kind of non-product, and the line amount and day derived.
    """

    def step(frame: DataFrame) -> DataFrame:
        code_class = stock_code_class(F.col("stock_code"), product_pattern, non_product_codes)
        return (
            frame.withColumn("description", F.trim(F.col("description")))
            .withColumn("is_cancellation", F.col("invoice_no").startswith("C"))
            .withColumn("stock_code_class", code_class)
            .withColumn("is_product", code_class == "product")
            .withColumn("amount", (F.col("quantity") * F.col("unit_price")).cast("decimal(18,3)"))
            .withColumn("invoice_day", F.to_date("invoice_date"))
        )

    return step


def dedupe_lines(frame: DataFrame) -> DataFrame:
    """One row per ``line_id`` (exact duplicates of the extract collapse into one line)."""
    return frame.dropDuplicates([LINE_ID])
