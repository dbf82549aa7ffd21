from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from chispa import assert_df_equality
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import EntityConfig, load_config
from etl_lib.layers import events

ENTITY = load_config().entities["events"]
ARRIVED = dt.datetime(2011, 1, 1, 12, 0)
RAW = "_source STRING, _stream STRING, _partition STRING, _offset STRING, _arrived_at TIMESTAMP, payload BINARY"


def raw(spark: SparkSession, payloads: list[bytes | None]) -> DataFrame:
    rows = [("kafka", "customer-events", "0", str(i), ARRIVED, payload) for i, payload in enumerate(payloads)]
    return spark.createDataFrame(rows, RAW)


def event(**fields: object) -> bytes:
    base = {
        "event_id": "e1",
        "event_type": "page_view",
        "customer_id": "12345",
        "session_id": "s1",
        "timestamp": "2011-01-01T11:59:00Z",
        "page_url": "/products/85123A",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_parse_events_types_good_records_and_says_what_is_wrong_with_the_others(spark: SparkSession) -> None:
    payloads = [
        event(),
        event(event_id="e2", event_type="purchase", page_url=None, product_id="85123A", quantity=6, amount=15.3),
        b"not json at all",
        b"[1, 2, 3]",
        b"",
        event(event_id=None),
        event(event_id="e3", event_type="purchase", page_url=None, product_id="85123A", quantity="six", amount=1),
        event(event_id="e4", event_type="purchase", page_url=None, quantity=1),
        event(event_id="e5", timestamp="2011-01-01T14:00:00Z"),
        event(event_id="e6", event_type="refund", page_url=None),
        b'{"event_id": "e7", "blob": "' + b"x" * 300 + b'"}',
        event(event_id="e8", timestamp="1970-01-01T00:00:00Z"),
        event(event_id="e9", customer_id="caf\xe9").replace(b"caf\\u00e9", b"caf\xe9"),  # Latin-1, not UTF-8
        event(event_id="e10").replace(b'"e10"', b'"e\x0010"'),  # a raw NUL inside a JSON string
        event(event_id="e11", customer_id="\u05e9\u05dc\u05d5\u05dd \U0001f600 e\u0301"),  # RTL, emoji, combining
        None,  # a Kafka record without a value
    ]
    parsed = raw(spark, payloads).transform(events.parse_events(ENTITY, 200, "1 hour", dt.datetime(2000, 1, 1)))
    found = [
        (row["_offset"], row["event_id"], [f"{r['column']} {r['message']}" for r in row["_errors"]])
        for row in parsed.orderBy(F.col("_offset").cast("int")).collect()
    ]
    assert found == [
        ("0", "e1", []),
        ("1", "e2", []),
        ("2", None, ["payload is not a JSON object"]),
        ("3", None, ["payload is not a JSON object"]),
        ("4", None, ["payload is not a JSON object"]),
        ("5", None, ["event_id is missing"]),
        ("6", "e3", ["quantity is a JSON string but is declared int"]),
        (
            "7",
            "e4",
            [
                "product_id is missing (required when event_type is purchase)",
                "amount is missing (required when event_type is purchase)",
            ],
        ),
        ("8", "e5", ["timestamp is more than 1 hour after the record arrived at 2011-01-01 12:00:00"]),
        ("9", "e6", []),  # other event types are kept, not aggregated
        ("10", None, ["payload is larger than 200 bytes"]),
        ("11", "e8", ["timestamp is before 2000-01-01 00:00:00, the earliest accepted"]),
        ("12", "e9", ["payload is not valid UTF-8"]),
        ("13", None, ["payload is not a JSON object"]),
        ("14", "e11", []),
        ("15", None, ["payload is not a JSON object"]),
    ]
    customer = parsed.where("event_id = 'e11'").select("customer_id").first()
    assert customer is not None
    assert customer["customer_id"] == "\u05e9\u05dc\u05d5\u05dd \U0001f600 e\u0301"
    bought = parsed.where("event_id = 'e2'").select("quantity", "amount", "timestamp", "event_date").first()
    assert bought is not None
    assert (bought["quantity"], str(bought["amount"]), bought["timestamp"], bought["event_date"]) == (
        6,
        "15.300",
        dt.datetime(2011, 1, 1, 11, 59),
        dt.date(2011, 1, 1),
    )


ERRORS = "_errors ARRAY<STRUCT<rule: STRING, column: STRING, message: STRING>>"
PURCHASE = {"event_type": "purchase", "page_url": None, "product_id": "85123A", "quantity": 6, "amount": 15.3}


def purchase(**fields: object) -> bytes:
    """A purchase event: :data:`PURCHASE` with ``fields`` over it."""
    return event(**PURCHASE | fields)


def typed(spark: SparkSession, payloads: list[bytes], *columns: str) -> DataFrame:
    parsed = raw(spark, payloads).transform(events.parse_events(ENTITY, 10_000, "1 hour"))
    return parsed.select(*columns, "_errors")


def wrong_type(column: str, found: str, declared: str) -> list[tuple[str, str, str]]:
    return [("type", column, f"is a JSON {found} but is declared {declared}")]


def test_a_string_column_takes_json_strings_and_integers(spark: SparkSession) -> None:
    payloads = [
        event(event_id="n1", customer_id=12345),  # a numeric id: its digits
        event(event_id="n2", customer_id=123456789012345678901234567890),  # beyond any Spark integer type
        # Strings that read like other JSON types stay strings, escaped or not.
        event(event_id="s1", session_id="6.5", product_id="true", page_url="[draft]", user_agent='{"ua": 1}'),
        event(event_id="s2", session_id="1e3", product_id="false", user_agent="\u00e9\\"),
        event(event_id="o1", customer_id={"id": 12345}),
        event(event_id="o2", customer_id=[12345]),
        event(event_id="o3", customer_id=True),
        event(event_id="o4", customer_id=12345.0),
        event(event_id="o5", customer_id="@").replace(b'"@"', b"1.2345e4"),
        event(event_id={"id": "o6"}),  # the case: was stored as the text {"id":"o6"}
    ]
    url = "/products/85123A"
    fraction = "number with a fraction or an exponent"
    expected = spark.createDataFrame(
        [
            ("n1", "12345", "s1", None, url, None, []),
            ("n2", "123456789012345678901234567890", "s1", None, url, None, []),
            ("s1", "12345", "6.5", "true", "[draft]", '{"ua": 1}', []),
            ("s2", "12345", "1e3", "false", url, "\u00e9\\", []),
            ("o1", None, "s1", None, url, None, wrong_type("customer_id", "object", "string")),
            ("o2", None, "s1", None, url, None, wrong_type("customer_id", "array", "string")),
            ("o3", None, "s1", None, url, None, wrong_type("customer_id", "boolean", "string")),
            ("o4", None, "s1", None, url, None, wrong_type("customer_id", fraction, "string")),
            ("o5", None, "s1", None, url, None, wrong_type("customer_id", fraction, "string")),
            (None, "12345", "s1", None, url, None, wrong_type("event_id", "object", "string")),
        ],
        "event_id STRING, customer_id STRING, session_id STRING, product_id STRING, page_url STRING, "
        f"user_agent STRING, {ERRORS}",
    )
    found = typed(spark, payloads, "event_id", "customer_id", "session_id", "product_id", "page_url", "user_agent")
    assert_df_equality(found, expected, ignore_nullable=True, ignore_row_order=True)


def test_number_columns_take_json_numbers_only(spark: SparkSession) -> None:
    payloads = [
        purchase(event_id="p1"),
        purchase(event_id="p2", amount=10),  # an integer for a decimal: its value
        purchase(event_id="p3", amount="@").replace(b'"@"', b"1.53e1"),
        # Still numbers where the record has the field's name followed by a string (nested, so it is parsed
        # again to tell), where it has escapes elsewhere, or where the name is escaped.
        purchase(event_id="p4", amount=6, extra={"quantity": "2", "amount": "6"}),
        purchase(event_id="p5", user_agent="caf\u00e9"),
        purchase(event_id="p6").replace(b'"quantity"', b'"qu\\u0061ntity"'),
        purchase(event_id="q1", quantity="6"),
        purchase(event_id="q2", quantity="@").replace(b'"@"', b'"\\u0036"'),  # "6" escaped
        purchase(event_id="q6", quantity="6").replace(b'"quantity"', b'"qu\\u0061ntity"'),
        purchase(event_id="q3", quantity=6.0),
        purchase(event_id="q4", quantity=True),
        purchase(event_id="q5", quantity=" "),  # a blank string is a missing value, as in extracts
        purchase(event_id="a1", amount="15.30"),
        purchase(event_id="a2", amount={"value": 15.3}),
        purchase(event_id="a3", amount=[15.3]),
    ]
    decimal = "decimal(18,3)"
    expected = spark.createDataFrame(
        [
            ("p1", 6, Decimal("15.300"), []),
            ("p2", 6, Decimal("10.000"), []),
            ("p3", 6, Decimal("15.300"), []),
            ("p4", 6, Decimal("6.000"), []),
            ("p5", 6, Decimal("15.300"), []),
            ("p6", 6, Decimal("15.300"), []),
            ("q1", None, Decimal("15.300"), wrong_type("quantity", "string", "int")),
            ("q2", None, Decimal("15.300"), wrong_type("quantity", "string", "int")),
            ("q6", None, Decimal("15.300"), wrong_type("quantity", "string", "int")),
            ("q3", None, Decimal("15.300"), wrong_type("quantity", "number with a fraction or an exponent", "int")),
            ("q4", None, Decimal("15.300"), wrong_type("quantity", "boolean", "int")),
            (
                "q5",
                None,
                Decimal("15.300"),
                [("required", "quantity", "is missing (required when event_type is purchase)")],
            ),
            ("a1", 6, None, wrong_type("amount", "string", decimal)),
            ("a2", 6, None, wrong_type("amount", "object", decimal)),
            ("a3", 6, None, wrong_type("amount", "array", decimal)),
        ],
        f"event_id STRING, quantity INT, amount DECIMAL(18,3), {ERRORS}",
    )
    found = typed(spark, payloads, "event_id", "quantity", "amount")
    assert_df_equality(found, expected, ignore_nullable=True, ignore_row_order=True)


def test_timestamps_take_json_strings_and_a_json_null_is_a_missing_value(spark: SparkSession) -> None:
    payloads = [
        event(event_id="t1"),
        event(event_id="t2", timestamp=1293883140),  # epoch seconds or milliseconds: the unit is a guess
        event(event_id="t3", timestamp=True),
        event(event_id="t4", timestamp="yesterday"),  # a string, which does not read as a timestamp
        event(event_id="u1").replace(b'"page_view"', b"null"),
        event(event_id="u2", user_agent="@").replace(b'"@"', b"null"),
        # Not JSON (RFC 8259), though Spark's reader would take them by default.
        b"{'event_id': 'f1', 'event_type': 'page_view'}",
        purchase(event_id="f2", amount="@").replace(b'"@"', b"NaN"),
    ]
    at = dt.datetime(2011, 1, 1, 11, 59)
    expected = spark.createDataFrame(
        [
            ("t1", at, None, []),
            ("t2", None, None, wrong_type("timestamp", "number", "timestamp")),
            ("t3", None, None, wrong_type("timestamp", "boolean", "timestamp")),
            ("t4", None, None, [("type", "timestamp", 'cannot read {"timestamp":"yesterday"} as timestamp')]),
            ("u1", at, None, [("required", "event_type", "is missing")]),
            ("u2", at, None, []),
            (None, None, None, [("format", "payload", "is not a JSON object")]),
            (None, None, None, [("format", "payload", "is not a JSON object")]),
        ],
        f"event_id STRING, timestamp TIMESTAMP, user_agent STRING, {ERRORS}",
    )
    found = typed(spark, payloads, "event_id", "timestamp", "user_agent")
    assert_df_equality(found, expected, ignore_nullable=True, ignore_row_order=True)


def test_double_and_boolean_columns_take_numbers_and_booleans(spark: SparkSession) -> None:
    entity = EntityConfig(
        columns={"event_id": "string", "timestamp": "timestamp", "ratio": "double", "flag": "boolean"},
        required=["event_id"],
    )
    base = {"timestamp": "2011-01-01T11:59:00Z"}
    payloads = [
        json.dumps(base | {"event_id": "d1", "ratio": 2, "flag": True}).encode(),  # an integer for a double
        json.dumps(base | {"event_id": "d2", "ratio": 2.5e-1, "flag": False}).encode(),
        json.dumps(base | {"event_id": "d3", "ratio": "2.5"}).encode(),
        json.dumps(base | {"event_id": "b1", "flag": "true"}).encode(),
        json.dumps(base | {"event_id": "b2", "flag": 1}).encode(),
    ]
    parsed = raw(spark, payloads).transform(events.parse_events(entity, 10_000, "1 hour"))
    expected = spark.createDataFrame(
        [
            ("d1", 2.0, True, []),
            ("d2", 0.25, False, []),
            ("d3", None, None, wrong_type("ratio", "string", "double")),
            ("b1", None, None, wrong_type("flag", "string", "boolean")),
            ("b2", None, None, wrong_type("flag", "number", "boolean")),
        ],
        f"event_id STRING, ratio DOUBLE, flag BOOLEAN, {ERRORS}",
    )
    assert_df_equality(
        parsed.select("event_id", "ratio", "flag", "_errors"), expected, ignore_nullable=True, ignore_row_order=True
    )


def valid(spark: SparkSession, payloads: list[bytes]) -> DataFrame:
    parsed = raw(spark, payloads).transform(events.parse_events(ENTITY, 10_000, "1 hour"))
    return parsed.transform(events.valid_events(ENTITY, 7, "q1", ARRIVED))


def test_duplicates_keep_the_first_and_conflicting_bodies_are_refused(spark: SparkSession) -> None:
    rows = valid(
        spark,
        [
            event(event_id="a"),
            event(event_id="a"),  # the same event again
            event(event_id="b", page_url="/one"),
            event(event_id="b", page_url="/two", timestamp="2011-01-01T11:59:30Z"),  # same id, another body
        ],
    )
    kept = events.first_per_event_id(rows)
    assert sorted((r["event_id"], r["page_url"]) for r in kept.collect()) == [("a", "/products/85123A"), ("b", "/one")]
    conflicts = events.conflicting_duplicates(rows, kept.select("event_id", "_payload_digest"))
    assert [(r["event_id"], r["page_url"], r["_errors"][0]["rule"]) for r in conflicts.collect()] == [
        ("b", "/two", "unique")
    ]


def test_judging_a_batch_gives_every_record_one_fate_against_the_batch_and_the_stored_events(
    spark: SparkSession,
) -> None:
    parsed = raw(
        spark,
        [
            event(event_id="a"),
            event(event_id="a"),  # the same event again
            event(event_id="b", page_url="/one"),
            event(event_id="b", page_url="/two", timestamp="2011-01-01T11:59:30Z"),  # the batch's first has /one
            event(event_id="c"),  # stored already, with this body
            event(event_id="d"),  # stored already, with another body
            event(event_id="old", timestamp="2011-01-01T10:00:00Z"),
            b"not json",
        ],
    ).transform(events.parse_events(ENTITY, 10_000, "1 hour"))
    stored = (
        parsed.where("event_id = 'c'")
        .select("event_id", "_payload_digest")
        .unionByName(spark.createDataFrame([("d", "another body")], "event_id STRING, _payload_digest STRING"))
    )
    judged = parsed.transform(events.judge_events(dt.datetime(2011, 1, 1, 11, 0), stored))
    expected = spark.createDataFrame(
        [
            ("0", "a", "fresh"),
            ("1", "a", "duplicate"),
            ("2", "b", "fresh"),
            ("3", "b", "conflict"),
            ("4", "c", "duplicate"),
            ("5", "d", "conflict"),
            ("6", "old", "late"),
            ("7", None, "refused"),
        ],
        "_offset STRING, event_id STRING, _fate STRING",
    )
    assert_df_equality(
        judged.select("_offset", "event_id", events.FATE), expected, ignore_nullable=True, ignore_row_order=True
    )
    refused = judged.transform(events.refused_events(7, "q1", ARRIVED))
    assert sorted((r["_offset"], r["reasons"][0]["rule"]) for r in refused.collect()) == [
        ("3", "unique"),
        ("5", "unique"),
        ("7", "format"),
    ]
    # Before the first watermark nothing is late.
    first = parsed.transform(events.judge_events(None, stored.limit(0)))
    assert first.where(f"{events.FATE} = 'late'").count() == 0


def test_late_events_are_split_off_against_the_watermark(spark: SparkSession) -> None:
    rows = valid(spark, [event(event_id="old", timestamp="2011-01-01T10:00:00Z"), event(event_id="new")])
    on_time, late = events.split_late(rows, dt.datetime(2011, 1, 1, 11, 0))
    assert [r["event_id"] for r in on_time.collect()] == ["new"]
    assert [r["event_id"] for r in late.collect()] == ["old"]
    everything, nothing = events.split_late(rows, None)
    assert (everything.count(), nothing.count()) == (2, 0)


def test_views_of_a_few_events(spark: SparkSession) -> None:
    rows = valid(
        spark,
        [
            event(event_id="v1", timestamp="2011-01-01T10:01:00Z", page_url="/a"),
            event(event_id="v2", timestamp="2011-01-01T10:03:00Z", page_url="/b"),
            purchase(event_id="p1", product_id="X", quantity=2, amount=10.5, timestamp="2011-01-01T10:04:00Z"),
            event(event_id="v3", timestamp="2011-01-01T10:06:00Z", page_url="/c"),
            event(event_id="r1", event_type="refund", page_url=None, timestamp="2011-01-01T10:07:00Z"),
        ],
    )
    at = dt.datetime
    windows = rows.transform(events.session_windows("5 minutes", "page_view", "purchase"))
    expected = spark.createDataFrame(
        [
            ("12345", "s1", at(2011, 1, 1, 10, 0), at(2011, 1, 1, 10, 5), 2, 1, "10.500", 3, at(2011, 1, 1, 10, 4)),
            ("12345", "s1", at(2011, 1, 1, 10, 5), at(2011, 1, 1, 10, 10), 1, 0, "0.000", 2, at(2011, 1, 1, 10, 7)),
        ],
        "customer_id STRING, session_id STRING, window_start TIMESTAMP, window_end TIMESTAMP, page_views BIGINT, "
        "purchases BIGINT, purchase_amount STRING, events BIGINT, last_event_time TIMESTAMP",
    ).withColumn("purchase_amount", F.col("purchase_amount").cast("decimal(28,3)"))
    assert_df_equality(windows, expected, ignore_nullable=True, ignore_row_order=True)

    sessions = rows.transform(events.session_activity("page_view")).first()
    assert sessions is not None
    assert (sessions["page_views"], sessions["events"], sessions["current_page"], sessions["last_activity"]) == (
        3,
        5,
        "/c",
        at(2011, 1, 1, 10, 7),
    )
    value = rows.transform(events.customer_value("purchase")).first()
    assert value is not None
    assert (str(value["lifetime_value"]), value["purchase_count"]) == ("10.500", 1)
    outbox = rows.transform(events.fulfillment_requests("purchase"))
    assert [(r["request_id"], r["status"], r["_batch_id"]) for r in outbox.collect()] == [("p1", "pending", 7)]


def test_increments_folded_once_per_window_equal_each_views_own_step(spark: SparkSession) -> None:
    # Three customers, a session over several windows, a customer who never buys, another who only buys, and page
    # views tied on time: what each view's own step makes of the events is what the views batch derives from its
    # one fold of them per customer, session and window.
    rows = valid(
        spark,
        [
            event(event_id="a1", timestamp="2011-01-01T10:01:00Z", page_url="/a"),
            event(event_id="a2", timestamp="2011-01-01T10:07:00Z", page_url="/b"),
            event(event_id="a3", timestamp="2011-01-01T10:07:00Z", page_url="/c"),
            event(event_id="a4", timestamp="2011-01-01T10:12:00Z", page_url="/d"),
            purchase(event_id="ap1", product_id="X", quantity=2, amount=10.5, timestamp="2011-01-01T10:08:00Z"),
            purchase(event_id="ap2", product_id="Y", quantity=1, amount=4.25, timestamp="2011-01-01T10:13:00Z"),
            event(event_id="b1", customer_id="99999", session_id="s9", timestamp="2011-01-01T09:59:00Z"),
            event(event_id="b2", customer_id="99999", session_id="s9", timestamp="2011-01-01T10:02:00Z"),
            purchase(
                event_id="c1",
                customer_id="77777",
                session_id="s7",
                product_id="Z",
                quantity=1,
                amount=3,
                timestamp="2011-01-01T10:02:00Z",
            ),
        ],
    )
    activity = rows.transform(events.window_activity("5 minutes", "page_view", "purchase"))
    assert activity.count() == 6
    assert_df_equality(
        events.activity_sessions(activity),
        rows.transform(events.session_activity("page_view")),
        ignore_nullable=True,
        ignore_row_order=True,
    )
    assert_df_equality(
        events.activity_customer_value(activity),
        rows.transform(events.customer_value("purchase")),
        ignore_nullable=True,
        ignore_row_order=True,
    )
    value = {r["customer_id"]: r for r in events.activity_customer_value(activity).collect()}
    assert set(value) == {"12345", "77777"}
    assert (value["12345"]["lifetime_value"], value["12345"]["purchase_count"]) == (Decimal("14.750"), 2)
    assert (value["77777"]["lifetime_value"], value["77777"]["purchase_count"]) == (Decimal("3.000"), 1)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELD_VALUES = st.one_of(
    st.text(),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    JSON_VALUES,
    st.sampled_from(["page_view", "purchase", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2011-01-01T11:00:00Z"]),
)
EVENT_OBJECTS = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(ENTITY.columns, FIELD_VALUES) | {"extra": JSON_VALUES}
).map(lambda body: json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass"))
PAYLOADS = st.one_of(st.binary(max_size=300), EVENT_OBJECTS, st.just(b""), st.none())
KNOWN_RULES = {"size", "encoding", "format", "required", "type", "range"}


def json_type(value: object) -> str:
    """The JSON type ``json.dumps`` writes ``value`` as (a float always with a fraction or an exponent)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(payloads=st.lists(PAYLOADS, min_size=1, max_size=40))
def test_any_record_is_either_a_typed_event_or_refused_with_a_known_reason(
    spark: SparkSession, payloads: list[bytes | None]
) -> None:
    parsed = raw(spark, payloads).transform(events.parse_events(ENTITY, 250, "1 hour", dt.datetime(2000, 1, 1)))
    rows = parsed.orderBy(F.col("_offset").cast("int")).collect()
    # Nothing is lost and nothing is made up: one row per record, in the records' coordinates.
    assert [row["_offset"] for row in rows] == [str(i) for i in range(len(payloads))]
    for row, payload in zip(rows, payloads, strict=True):
        reasons = row["_errors"]
        assert row["payload"] == payload
        if reasons:
            assert {r["rule"] for r in reasons} <= KNOWN_RULES, reasons
            assert all(r["message"] for r in reasons)
            continue
        # An accepted record is a JSON object with every required field, each field of a JSON type its column
        # takes (a blank string is a missing value), read as the column's type.
        document = json.loads(payload or b"")
        assert isinstance(document, dict)
        for name in ENTITY.required:
            assert row[name] is not None
            assert document.get(name) is not None
        for name, type_name in ENTITY.columns.items():
            value = document.get(name)
            if value is not None and not (isinstance(value, str) and value.strip(" ") == ""):
                assert json_type(value) in events.json_types_taken(type_name), (name, value)
        assert dt.datetime(2000, 1, 1) <= row["timestamp"] <= ARRIVED + dt.timedelta(hours=1)
