"""Speed layer transforms: raw stream records to typed events, and the increments of the real-time views.

Every function is a pure ``DataFrame -> DataFrame`` step; the same steps serve a micro-batch and a batch
recomputation (which is how the views are checked against silver).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from etl_lib.config import EntityConfig
from etl_lib.layers import Step, silver

#: What every stream reader yields: where a record came from, when it arrived, and its bytes untouched.
RAW_COLUMNS = ("_source", "_stream", "_partition", "_offset", "_arrived_at", "payload")
#: Coordinates and lineage carried from bronze to silver, the dead letters and the late events.
TRACE_COLUMNS = ("_source", "_stream", "_partition", "_offset", "_arrived_at")
ERRORS = silver.ERRORS
_CORRUPT = "_corrupt_record"


def watermark_partition(source: str) -> str:
    """The column whose values are read at their own pace: Kafka partitions, Kinesis shards; files are one."""
    return "_partition" if source in ("kafka", "kinesis") else "_stream"


def _reason(rule: str, column: str, message: Column) -> Column:
    return F.struct(F.lit(rule).alias("rule"), F.lit(column).alias("column"), message.alias("message"))


# JSON as RFC 8259 has it: Spark's reader would also take single-quoted strings, and NaN or Infinity as numbers.
# The type checks below rely on every string being in double quotes.
_JSON_OPTIONS = {"allowSingleQuotes": "false", "allowNonNumericNumbers": "false"}
_REFUSED = "_refused"
#: The JSON types whose values Spark reads as a text a string could have too.
_LOOKALIKES = ("integer", "number", "boolean", "object", "array")
_NUMBER_TEXT = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"


def json_types_taken(type_name: str) -> frozenset[str]:
    """The JSON types a column declared ``type_name`` takes from an event; a value of another type is refused.

    The types are ``string``, ``integer`` (a number written without fraction or exponent), ``number`` (one
    written with either), ``boolean``, ``object`` and ``array``. A string column takes strings and integers
    (a numeric id, kept as its digits); int and bigint columns integers; double and decimal columns both
    kinds of numbers; a boolean column booleans; date and timestamp columns strings (read as Spark casts
    text). A missing field, a JSON null and a blank string are a missing value whatever the column's type.
    """
    if type_name == "string":
        return frozenset({"string", "integer"})
    if type_name in ("int", "bigint"):
        return frozenset({"integer"})
    if type_name == "double" or type_name.startswith("decimal"):
        return frozenset({"integer", "number"})
    if type_name == "boolean":
        return frozenset({"boolean"})
    return frozenset({"string"})


def _look_sql(name: str, taken: frozenset[str]) -> str:
    """SQL of the JSON type whose value Spark reads as the field's text (``string`` if only a string's is).

    The text's first character decides which test is tried, so that a text that is plainly a string (most
    are) costs a few comparisons of one character. An integer and a string read alike where the column takes
    both: the pattern is then only tried on a text with a fraction or an exponent.
    """
    text = f"`{name}`"
    first = f"substr({text}, 1, 1)"
    digits = ", ".join(repr(char) for char in "-0123456789")
    fraction = f"(contains({text}, '.') OR contains({text}, 'e') OR contains({text}, 'E'))"
    number = f"{text} RLIKE r'{_NUMBER_TEXT}'"
    if {"integer", "string"} <= taken:
        numeric = f"CASE WHEN {fraction} AND {number} THEN 'number' ELSE 'string' END"
    else:
        numeric = f"CASE WHEN {number} THEN CASE WHEN {fraction} THEN 'number' ELSE 'integer' END ELSE 'string' END"
    # A text starting with a quote is a number too large for a double ("Infinity", in quotes) or a string's
    # content that starts with one: the record is read again to tell (_json_type_refused).
    return (
        f"CASE WHEN {first} IN ({digits}) THEN {numeric}"
        f" WHEN {first} = '\"' THEN 'number'"
        f" WHEN {first} = '{{' THEN 'object'"
        f" WHEN {first} = '[' THEN 'array'"
        f" WHEN {text} IN ('true', 'false') THEN 'boolean'"
        f" WHEN trim({text}) != '' THEN 'string' END"
    )


def _json_type_refused(name: str, type_name: str) -> str:
    r"""SQL of why the JSON type of field ``name`` is refused for its column: NULL when taken, missing or blank.

    Spark reads the field as text: a string's content, or any other value's JSON written again (a number in
    Java's notation, ``1.0E-5``, or ``"Infinity"`` in quotes once it overflows a double). A text only a string
    gives (``pv-1``) is a string. A text another type gives too (``6``, ``true``, ``{...}``) is of that type
    unless the record has the field's name followed by a quote (``"quantity": "6"``, the name's letters maybe
    escaped, ``"qu\u0061ntity"``), as a string value would be written. Only then, and only where the answer
    matters, is the record parsed again: the value is not a string if a Spark type that reads no string
    (double, boolean, struct, array) reads it.

    It is SQL text because the speed layer builds its steps every micro-batch, and each Column operation of
    PySpark is several calls to the JVM (hundreds for this check, against one); the name is a configured
    identifier (lower case letters, digits, underscores) and the type one of the supported ones.
    """
    document = "CAST(payload AS STRING)"
    taken = json_types_taken(type_name)
    look = _look_sql(name, taken)  # twice below: Spark works it out once
    # Where a string would give the same text, whether it is one matters unless the column takes both.
    deciding = ", ".join(f"'{kind}'" for kind in _LOOKALIKES if not {kind, "string"} <= taken)
    # The name as is (a quick search), else with letters escaped, which needs a backslash and a u.
    escaped = "".join(f"(?:{char}|\\\\u(?i:{ord(char):04x}))" for char in name)
    maybe_string = (
        f'({document} RLIKE r\'"{name}"\\s*:\\s*"\''
        f" OR contains({document}, r'\\u') AND {document} RLIKE r'\"{escaped}\"\\s*:\\s*\"')"
    )
    # Each appears once, so that Spark reads the record again only when it gets there. No options: the record
    # is already known to be strict JSON, and no text a string could give NaN or Infinity with is asked about.
    read = " OR ".join(
        f"from_json({document}, '`{name}` {schema}').`{name}` IS NOT NULL"
        for schema in ("DOUBLE", "BOOLEAN", "STRUCT<>", "ARRAY<STRING>")
    )
    in_question = f"coalesce({look} IN ({deciding}), false) AND {maybe_string}"
    json_type = f"CASE WHEN {in_question} AND NOT ({read}) THEN 'string' ELSE {look} END"
    # A column taking integers refuses a number for its fraction or exponent.
    fraction = " with a fraction or an exponent" if "integer" in taken else ""
    found = {"integer": "number", "number": f"number{fraction}"}
    refusals = ", ".join(
        f"'{kind}', 'is a JSON {found.get(kind, kind)} but is declared {type_name}'"
        for kind in ("string", "integer", "number", "boolean", "object", "array")
        if kind not in taken
    )
    return f"try_element_at(map({refusals}), {json_type})"


def _time_checks(max_future_skew: str, earliest: dt.datetime | None) -> list[Column]:
    """The reasons an event's time is refused, each null when it does not apply.

    An event is refused when stamped more than ``max_future_skew`` after it arrived, or before ``earliest``.
    """
    future = F.col("timestamp") > F.col("_arrived_at") + F.expr(f"INTERVAL {max_future_skew}")
    time_checks = [
        F.when(
            future,
            _reason(
                "range",
                "timestamp",
                F.concat(
                    F.lit(f"is more than {max_future_skew} after the record arrived at "),
                    F.col("_arrived_at").cast("string"),
                ),
            ),
        )
    ]
    if earliest is not None:
        # An aware time is one instant whatever the driver's or the session's zone.
        floor = earliest.astimezone(dt.UTC) if earliest.tzinfo else earliest.replace(tzinfo=dt.UTC)
        time_checks.append(
            F.when(
                F.col("timestamp") < F.lit(floor),
                _reason("range", "timestamp", F.lit(f"is before {floor:%Y-%m-%d %H:%M:%S}, the earliest accepted")),
            )
        )
    return time_checks


def _errors(max_payload_bytes: int, time_checks: list[Column]) -> Column:
    """What is wrong with a record: its size, encoding or format alone, or else its values' and time's reasons."""
    # A filter with a lambda keeps these wide projections out of whole-stage code generation, which is faster here:
    # generated as one, with arrays concatenated instead, they made methods too large for the JVM to compile.
    checks = F.filter(F.concat(F.col(ERRORS), F.array(*time_checks)), lambda reason: reason.isNotNull())
    return (
        F.when(
            F.col("_too_large"),
            F.array(_reason("size", "payload", F.lit(f"is larger than {max_payload_bytes} bytes"))),
        )
        .when(F.col("_not_utf8"), F.array(_reason("encoding", "payload", F.lit("is not valid UTF-8"))))
        .when(F.col("_not_json"), F.array(_reason("format", "payload", F.lit("is not a JSON object"))))
        .otherwise(checks)
    )


# One piece, longer than 60 lines: the step's columns are built once a run (each is a call to the JVM), in the order
# the step applies them.
def parse_events(
    entity: EntityConfig, max_payload_bytes: int, max_future_skew: str, earliest: dt.datetime | None = None
) -> Step:
    """Step from raw records to typed events, each with the list of what is wrong with it.

    A record is refused (non-empty ``_errors``) when it is larger than ``max_payload_bytes``, is not valid
    UTF-8, is not a JSON object, misses a required field (some only for some event types), has a value of
    a JSON type its column does not take (:func:`json_types_taken`) or one that does not read as the
    column's type, is stamped more than ``max_future_skew`` after it arrived, or before ``earliest``.

    Args:
        entity: the events' columns, types and required columns.
        max_payload_bytes: the largest record parsed, in bytes; a larger one is refused unparsed.
        max_future_skew: an SQL interval (``1 hour``): how far past its arrival an event may be stamped.
        earliest: the earliest event time accepted (a naive time is UTC); None accepts any.

    Returns:
        A step giving the trace columns, ``payload``, ``_payload_digest``, the entity's typed columns,
        ``event_date`` and ``_errors``.
    """
    fields = list(entity.columns)
    schema = StructType([StructField(name, StringType()) for name in fields] + [StructField(_CORRUPT, StringType())])
    to_entity = silver.to_entity(
        entity,
        {name: name for name in fields},
        keep=(*RAW_COLUMNS, "_not_json", "_not_utf8", "_too_large"),
        refused={name: F.col(f"{_REFUSED}.{name}") for name in fields},
    )

    # Built once, not for every micro-batch: each Column operation is a call to the JVM.
    text = F.col("payload").cast("string")
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT, **_JSON_OPTIONS}
    too_large = F.length("payload") > F.lit(max_payload_bytes)
    # Bytes that are not UTF-8 would be read with replacement characters: refused instead of altered.
    not_utf8 = F.coalesce(F.encode(text, "UTF-8") != F.col("payload"), F.lit(False))
    read: list[Column | str] = [
        *RAW_COLUMNS,
        too_large.alias("_too_large"),
        (~too_large & not_utf8).alias("_not_utf8"),
        # A record too large is not parsed at all.
        F.when(~too_large, F.from_json(text, schema, options)).alias("_json"),
    ]
    flatten: list[Column | str] = [
        *RAW_COLUMNS,
        "_too_large",
        "_not_utf8",
        (F.col("_json").isNull() | F.col(f"_json.{_CORRUPT}").isNotNull()).alias("_not_json"),
        *[F.col(f"_json.{name}").alias(name) for name in fields],
    ]
    # Each refusal is worked out once a record, as a value's typing and its errors both read it.
    refused = F.expr(
        "named_struct("
        + ", ".join(f"'{name}', {_json_type_refused(name, type_name)}" for name, type_name in entity.columns.items())
        + ")"
    )
    errors = _errors(max_payload_bytes, _time_checks(max_future_skew, earliest))
    result: list[Column | str] = [
        *TRACE_COLUMNS,
        "payload",
        F.sha2(F.col("payload"), 256).alias("_payload_digest"),
        *fields,
        F.to_date("timestamp").alias("event_date"),
        errors.alias(ERRORS),
    ]

    def step(raw: DataFrame) -> DataFrame:
        typed = raw.select(*read).select(*flatten).withColumn(_REFUSED, refused).transform(to_entity)
        return typed.select(*result)

    return step


def dead_letters(batch_id: int, query_id: str, ingested_at: dt.datetime) -> Step:
    """Step keeping the refused events as dead-letter rows: trace, payload, reasons and a one-line error.

    Args:
        batch_id: the micro-batch, for ``_batch_id``.
        query_id: the streaming query's id, for ``_query_id``.
        ingested_at: when the micro-batch ran, for ``_ingested_at``.
    """

    def step(events: DataFrame) -> DataFrame:
        summary = F.array_join(
            F.transform(F.col(ERRORS), lambda r: F.concat_ws(" ", r.getField("column"), r.getField("message"))), "; "
        )
        return events.where(silver.has_errors()).select(
            *TRACE_COLUMNS,
            "payload",
            F.col(ERRORS).alias("reasons"),
            summary.alias("error"),
            *_batch_columns(batch_id, query_id, ingested_at),
        )

    return step


def _batch_columns(batch_id: int, query_id: str, ingested_at: dt.datetime) -> list[Column]:
    return [
        F.lit(query_id).alias("_query_id"),
        F.lit(batch_id).cast("bigint").alias("_batch_id"),
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
    ]


def bronze_records(batch_id: int, query_id: str, ingested_at: dt.datetime) -> Step:
    """Step stamping raw records with the micro-batch that landed them.

    Args:
        batch_id: the micro-batch, for ``_batch_id``.
        query_id: the streaming query's id, for ``_query_id``.
        ingested_at: when the micro-batch ran, for ``_ingested_at``.
    """

    def step(raw: DataFrame) -> DataFrame:
        return raw.select(*RAW_COLUMNS, *_batch_columns(batch_id, query_id, ingested_at))

    return step


def valid_events(entity: EntityConfig, batch_id: int, query_id: str, ingested_at: dt.datetime) -> Step:
    """Step keeping the accepted events, with silver's columns (and ``unit_price`` of a purchase line).

    Args:
        entity: the events' columns, kept in their order.
        batch_id: the micro-batch, for ``_batch_id``.
        query_id: the streaming query's id, for ``_query_id``.
        ingested_at: when the micro-batch ran, for ``_ingested_at``.
    """

    def step(events: DataFrame) -> DataFrame:
        quantity, amount = F.col("quantity"), F.col("amount")
        unit_price = F.when(quantity.isNotNull() & (quantity != 0), amount / quantity).cast("decimal(18,3)")
        return events.where(silver.no_errors()).select(
            *entity.columns,
            unit_price.alias("unit_price"),
            "event_date",
            "payload",
            "_payload_digest",
            *TRACE_COLUMNS,
            *_batch_columns(batch_id, query_id, ingested_at),
        )

    return step


#: Which of the events sharing an id is the first: the earliest by event time, then stream position.
FIRST_OF_AN_ID = ("timestamp", "_stream", "_partition", "_offset", "_payload_digest")


def first_per_event_id(events: DataFrame) -> DataFrame:
    """One row per ``event_id``: the first by event time, then stream position (the same row every time)."""
    order = Window.partitionBy("event_id").orderBy(*FIRST_OF_AN_ID)
    return events.withColumn("_rank", F.row_number().over(order)).where(F.col("_rank") == 1).drop("_rank")


def conflicting_duplicates(events: DataFrame, kept: DataFrame) -> DataFrame:
    """Events reusing the id of a kept event with a different body (identical repeats are not conflicts)."""
    known = kept.select("event_id", F.col("_payload_digest").alias("_kept_digest"))
    return (
        events.join(known, "event_id")
        .where(F.col("_payload_digest") != F.col("_kept_digest"))
        .drop("_kept_digest")
        .withColumn(
            ERRORS,
            F.array(_reason("unique", "event_id", F.lit("was already used by an event with a different body"))),
        )
    )


def split_late(events: DataFrame, watermark: dt.datetime | None) -> tuple[DataFrame, DataFrame]:
    """``(on_time, late)``: events older than ``watermark`` are late (none are, before the first watermark)."""
    if watermark is None:
        return events, events.limit(0)
    cutoff = F.lit(watermark).cast("timestamp")
    return events.where(F.col("timestamp") >= cutoff), events.where(F.col("timestamp") < cutoff)


#: The columns of the session windows view (:func:`session_windows`), in order.
WINDOW_COLUMNS = (
    "customer_id",
    "session_id",
    "window_start",
    "window_end",
    "page_views",
    "purchases",
    "purchase_amount",
    "events",
    "last_event_time",
)


def session_windows(window: str, page_view_type: str, purchase_type: str) -> Step:
    """Step counting events per customer, session and tumbling event-time window (the seed's 5-minute view).

    ``page_views`` counts page views, ``purchases`` and ``purchase_amount`` purchases, ``events`` every
    event of the window, ``last_event_time`` its newest event.

    Args:
        window: the windows' length, as Spark's ``window`` takes it (``5 minutes``).
        page_view_type: the ``event_type`` of a page view.
        purchase_type: the ``event_type`` of a purchase.
    """
    activity = window_activity(window, page_view_type, purchase_type)
    return lambda events: events.transform(activity).select(*WINDOW_COLUMNS)


def window_activity(window: str, page_view_type: str, purchase_type: str) -> Step:
    """Step folding events once, per customer, session and window, into what the three views' increments need.

    The columns of :func:`session_windows`, then (underscored) what :func:`activity_sessions` and
    :func:`activity_customer_value` fold further: each window's first event, its latest page view, and its
    purchases' total (null when none had an amount), first and last time. A views micro-batch aggregates its
    events once with it and derives the three increments from its few rows, where each view's own step would read
    every event again; the increments equal those of :func:`session_activity` and :func:`customer_value`.
    """

    def step(events: DataFrame) -> DataFrame:
        is_view = F.col("event_type") == page_view_type
        is_purchase = F.col("event_type") == purchase_type
        purchased_at = F.when(is_purchase, F.col("timestamp"))
        return (
            events.groupBy("customer_id", "session_id", F.window("timestamp", window).alias("w"))
            .agg(
                F.sum(is_view.cast("bigint")).alias("page_views"),
                F.sum(is_purchase.cast("bigint")).alias("purchases"),
                F.count(F.lit(1)).alias("events"),
                F.max("timestamp").alias("last_event_time"),
                F.min("timestamp").alias("_first_event_time"),
                F.max(F.when(is_view, F.struct(F.col("timestamp").alias("at"), F.col("page_url").alias("url")))).alias(
                    "_latest_view"
                ),
                F.sum(F.when(is_purchase, F.col("amount"))).alias("_purchase_total"),
                F.min(purchased_at).alias("_first_purchase_at"),
                F.max(purchased_at).alias("_last_purchase_at"),
            )
            .withColumn("window_start", F.col("w.start"))
            .withColumn("window_end", F.col("w.end"))
            .drop("w")
            .withColumn(
                "purchase_amount",
                F.coalesce("_purchase_total", F.lit(0).cast("decimal(18,3)")).cast("decimal(28,3)"),
            )
        )

    return step


def activity_sessions(activity: DataFrame) -> DataFrame:
    """The increments of :func:`session_activity`, from the rows of :func:`window_activity`."""
    latest_view = F.max("_latest_view")
    return activity.groupBy("customer_id", "session_id").agg(
        F.sum("page_views").alias("page_views"),
        F.sum("events").alias("events"),
        latest_view.getField("url").alias("current_page"),
        latest_view.getField("at").alias("current_page_at"),
        F.min("_first_event_time").alias("started_at"),
        F.max("last_event_time").alias("last_activity"),
    )


def activity_customer_value(activity: DataFrame) -> DataFrame:
    """The increments of :func:`customer_value`, from the rows of :func:`window_activity`."""
    return (
        activity.where(F.col("purchases") > 0)
        .groupBy("customer_id")
        .agg(
            F.sum("_purchase_total").cast("decimal(28,3)").alias("lifetime_value"),
            F.sum("purchases").alias("purchase_count"),
            F.min("_first_purchase_at").alias("first_purchase_at"),
            F.max("_last_purchase_at").alias("last_purchase_at"),
        )
    )


def session_activity(page_view_type: str) -> Step:
    """Step summarising sessions: page views, the current page (of the latest view), first and last activity."""

    def step(events: DataFrame) -> DataFrame:
        is_view = F.col("event_type") == page_view_type
        latest_view = F.max(F.when(is_view, F.struct(F.col("timestamp").alias("at"), F.col("page_url").alias("url"))))
        return events.groupBy("customer_id", "session_id").agg(
            F.sum(is_view.cast("bigint")).alias("page_views"),
            F.count(F.lit(1)).alias("events"),
            latest_view.getField("url").alias("current_page"),
            latest_view.getField("at").alias("current_page_at"),
            F.min("timestamp").alias("started_at"),
            F.max("timestamp").alias("last_activity"),
        )

    return step


def customer_value(purchase_type: str) -> Step:
    """Step summarising purchases per customer: lifetime value, purchase count, first and last purchase."""

    def step(events: DataFrame) -> DataFrame:
        purchases = events.where(F.col("event_type") == purchase_type)
        return purchases.groupBy("customer_id").agg(
            F.sum("amount").cast("decimal(28,3)").alias("lifetime_value"),
            F.count(F.lit(1)).alias("purchase_count"),
            F.min("timestamp").alias("first_purchase_at"),
            F.max("timestamp").alias("last_purchase_at"),
        )

    return step


def fulfillment_requests(purchase_type: str) -> Step:
    """Step turning purchases into outbox rows for order fulfilment (the seed's Step Functions trigger).

    Each row is ``pending``, with no execution yet; the relay (``dispatch_fulfillment``) fills in the rest.
    """

    def step(events: DataFrame) -> DataFrame:
        return events.where(F.col("event_type") == purchase_type).select(
            F.col("event_id").alias("request_id"),
            "customer_id",
            "session_id",
            "product_id",
            "quantity",
            "amount",
            F.col("timestamp").alias("purchased_at"),
            F.lit("pending").alias("status"),
            F.lit(None).cast("string").alias("execution_arn"),
            F.lit(None).cast("string").alias("execution_status"),
            F.lit(0).alias("attempts"),
            F.lit(None).cast("string").alias("error"),
            F.lit(None).cast("timestamp").alias("dispatched_at"),
            "_batch_id",
        )

    return step


#: What a micro-batch does with each record it read (:func:`judge_events`).
FATE = "_fate"


def judge_events(watermark: dt.datetime | None, stored: DataFrame) -> Step:
    """Step giving every parsed record of a micro-batch its fate, in ``_fate``.

    ``refused`` (it has errors), ``late`` (older than ``watermark``), ``conflict`` (its id is taken by an
    event with another body: the stored one, else the batch's first), ``duplicate`` (a repeat, same body,
    of a stored event or of the batch's first) or ``fresh`` (the first of its id, kept). The batch's first
    of an id is the earliest by event time, then stream position (:data:`FIRST_OF_AN_ID`, as
    :func:`first_per_event_id` and so the views' recomputation take it), so a replay judges as the first attempt.

    Args:
        watermark: events older than this are late; none are before the first watermark.
        stored: ``event_id`` and ``_payload_digest`` of the kept events that share an id with the batch's.
    """

    def step(parsed: DataFrame) -> DataFrame:
        ok = silver.no_errors()
        late = F.lit(False) if watermark is None else F.col("timestamp") < F.lit(watermark).cast("timestamp")
        order = Window.partitionBy("event_id", "_candidate").orderBy(*FIRST_OF_AN_ID)
        # One stored body per id, so that every record of the batch is judged once (silver keeps one event per
        # id; two queries writing it at once could leave two).
        known = stored.select("event_id", F.col("_payload_digest").alias("_stored_digest")).dropDuplicates(["event_id"])
        ranked = (
            parsed.withColumn("_candidate", ok & ~late)
            .withColumn("_rank", F.row_number().over(order))
            .withColumn("_first_digest", F.first("_payload_digest").over(order))
            .join(known, "event_id", "left")
        )
        body = F.coalesce(F.col("_stored_digest"), F.col("_first_digest"))
        fate = (
            F.when(~ok, F.lit("refused"))
            .when(late, F.lit("late"))
            .when(F.col("_payload_digest") != body, F.lit("conflict"))
            .when(F.col("_stored_digest").isNull() & (F.col("_rank") == 1), F.lit("fresh"))
            .otherwise(F.lit("duplicate"))
        )
        return ranked.withColumn(FATE, fate).drop("_candidate", "_rank", "_first_digest", "_stored_digest")

    return step


def refused_events(batch_id: int, query_id: str, ingested_at: dt.datetime) -> Step:
    """Step keeping the judged records refused or in conflict as dead-letter rows (:func:`dead_letters`).

    Args:
        batch_id: the micro-batch, for ``_batch_id``.
        query_id: the streaming query's id, for ``_query_id``.
        ingested_at: when the micro-batch ran, for ``_ingested_at``.
    """
    taken = F.array(_reason("unique", "event_id", F.lit("was already used by an event with a different body")))

    def step(judged: DataFrame) -> DataFrame:
        fate = F.col(FATE)
        return (
            judged.where(fate.isin("refused", "conflict"))
            .withColumn(ERRORS, F.when(fate == "conflict", taken).otherwise(F.col(ERRORS)))
            .transform(dead_letters(batch_id, query_id, ingested_at))
        )

    return step
