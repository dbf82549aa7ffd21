"""A corpus of hostile records through the real broker: each refused one lands in the dead letters with its
reason, bronze holds every record, every record is accounted for once, and the stream stays up."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.core.run import RunContext
from etl_lib.io import lakehouse
from etl_lib.producer.sinks import KafkaSink
from etl_lib.runtime.runner import run_job
from etl_lib.services.kafka import KafkaService

# A test of the suite's own logic, on the primary line: the parser is the speed layer's, run on both lines in
# spark/test_events and spark/test_speed_layer; the other line's Kafka connector runs in test_speed_streams (see the
# primary_line marker).
pytestmark = pytest.mark.primary_line

MAX_PAYLOAD = 50_000


def event(event_id: str | None, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "event_id": event_id,
        "event_type": "page_view",
        "customer_id": "17850",
        "session_id": "s-536365",
        "timestamp": "2010-12-01T08:25:00Z",
        "page_url": "/products/85123A",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def encoded(body: dict[str, object], ascii_only: bool = True) -> bytes:
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8")


#: Right-to-left text, an emoji outside the BMP, a combining accent, a direction override.
UNICODE_URL = "/p/\u05e9\u05dc\u05d5\u05dd/\U0001f600/e\u0301/\u202e"
PURCHASE = {"event_type": "purchase", "product_id": "85123A", "page_url": None}

#: (what it is, the record's value, the reason rule it must be refused with; None: accepted)
CORPUS: list[tuple[str, bytes | None, str | None]] = [
    ("valid", encoded(event("ok-1")), None),
    ("valid, unicode edge cases in raw UTF-8", encoded(event("ok-2", page_url=UNICODE_URL), False), None),
    ("valid, an undeclared field (schema drift: kept in bronze)", encoded(event("ok-3", referrer={"a": [1, 2]})), None),
    ("identical repeat of a valid event", encoded(event("ok-1")), None),
    ("not JSON", b"<html>502 Bad Gateway</html>", "format"),
    ("binary", bytes(range(256)), "encoding"),
    ("empty", b"", "format"),
    ("no value (a tombstone)", None, "format"),
    ("a JSON array", b"[1, 2, 3]", "format"),
    ("a JSON string", b'"event"', "format"),
    ("truncated JSON", encoded(event("cut-1"))[:40], "format"),
    ("huge payload", encoded(event("huge-1", page_url="/" + "x" * (MAX_PAYLOAD * 2))), "size"),
    ("deep nesting", b'{"event_id": "deep-1", "extra": ' + b"[" * 5000 + b"]" * 5000 + b"}", "format"),
    ("wrong type", encoded(event("type-1", **PURCHASE, quantity="six", amount=1.0)), "type"),
    ("wrong timestamp type", encoded(event("type-2", timestamp=[2011, 1, 1])), "type"),
    ("unparseable timestamp", encoded(event("type-3", timestamp="yesterday")), "type"),
    ("missing id", encoded(event(None)), "required"),
    ("empty id", encoded(event("  ")), "required"),
    ("duplicate id, different body", encoded(event("ok-1", page_url="/products/22423")), "unique"),
    ("far future", encoded(event("future-1", timestamp="2999-01-01T00:00:00Z")), "range"),
    ("far past (clock at zero)", encoded(event("past-1", timestamp="1970-01-01T00:00:00Z")), "range"),
    ("year one", encoded(event("past-2", timestamp="0001-01-01T00:00:00Z")), "range"),
    ("NUL byte inside a string", encoded(event("nul-1")).replace(b"nul-1", b"nul\x00-1"), "format"),
    ("Latin-1, not UTF-8", encoded(event("latin-1")).replace(b"17850", b"caf\xe9"), "encoding"),
    ("lone surrogate bytes (CESU)", encoded(event("sur-1")).replace(b"17850", b"\xed\xa0\x80"), "encoding"),
    ("purchase without amount", encoded(event("pur-1", **PURCHASE, quantity=1)), "required"),
]


def test_a_hostile_corpus_is_accounted_for_record_by_record(
    spark: SparkSession, suite_config: SuiteConfig, kafka: KafkaService, tmp_path: Path
) -> None:
    topic = f"hostile-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    data = suite_config.model_dump(mode="json")
    data["lakehouse"]["root"] = str(tmp_path / "lake")
    data["run"]["available_now"] = True
    data["speed"].update(source="kafka", max_payload_bytes=MAX_PAYLOAD)
    data["speed"]["kafka"].update(topic=topic, partitions=1)
    config = validate_config(data)

    # One partition, so offsets follow the corpus; values go as they are, None included.
    sink = KafkaSink(kafka.endpoint, topic, partitions=1)
    for _, value, _ in CORPUS:
        sink.producer.produce(topic, value=value, partition=0)
    assert sink.producer.flush(30) == 0

    run_job("speed_layer", config, spark, RunContext.new("speed_layer", new_id=lambda: "hostile-1"))
    path = config.lakehouse.table_path

    bronze = lakehouse.read(spark, path("bronze", "events"))
    assert sorted(int(r["_offset"]) for r in bronze.select("_offset").collect()) == list(range(len(CORPUS)))
    assert {int(r["_offset"]): r["payload"] for r in bronze.collect()} == {
        i: value for i, (_, value, _) in enumerate(CORPUS)
    }

    dead = {int(r["_offset"]): r for r in lakehouse.read(spark, path("bronze", "events_deadletter")).collect()}
    silver = {int(r["_offset"]): r for r in lakehouse.read(spark, path("silver", "events")).collect()}
    refused = {i: rule for i, (_, _, rule) in enumerate(CORPUS) if rule is not None}
    found = {i: sorted({reason["rule"] for reason in row["reasons"]}) for i, row in dead.items()}
    assert found == {i: [rule] for i, rule in refused.items()}, {CORPUS[i][0]: f for i, f in found.items()}
    assert all(row["error"] for row in dead.values())

    # Every record once: refused, in silver, or an identical repeat of an event silver holds.
    accepted = [i for i, (_, _, rule) in enumerate(CORPUS) if rule is None]
    assert sorted(silver) == [0, 1, 2]
    assert silver[1]["page_url"] == UNICODE_URL
    repeats = [i for i in accepted if i not in silver]
    assert repeats == [3]
    assert set(dead) | set(silver) | set(repeats) == set(range(len(CORPUS)))
    assert not set(dead) & set(silver)

    state = (
        lakehouse.read(spark, path("audit", "stream_state"))
        .agg(*[F.sum(c).alias(c) for c in ("records", "dead_letters", "late", "duplicates", "fresh")])
        .first()
    )
    assert state is not None
    assert (state["records"], state["dead_letters"], state["late"], state["duplicates"], state["fresh"]) == (
        len(CORPUS),
        len(refused),
        0,
        1,
        3,
    )

    # The stream is still usable: a good event after the corpus goes through on the same checkpoint.
    sink.producer.produce(topic, value=encoded(event("after-1")), partition=0)
    assert sink.producer.flush(30) == 0
    again = run_job("speed_layer", config, spark, RunContext.new("speed_layer", new_id=lambda: "hostile-2"))
    assert {f"{w.layer}/{w.table}": w.rows_written for w in again.writes}["silver/events"] == 1
