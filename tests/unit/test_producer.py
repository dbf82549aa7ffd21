from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from etl_lib.producer.events import events_of_line, line_digest, malformed_records, retail_events
from etl_lib.producer.sinks import FilesSink, ProducerError, Record, retry_failed

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


def test_a_purchase_line_is_a_page_view_then_a_purchase() -> None:
    values = ("536365", "85123A", "WHITE HANGING HEART", 6, dt.datetime(2010, 12, 1, 8, 26), 2.55, 17850, "UK")
    digest = line_digest(values)
    view, purchase = events_of_line("536365", "85123A", 6, dt.datetime(2010, 12, 1, 8, 26), 2.55, 17850, digest)
    assert purchase == {
        "event_id": f"pur-{digest}",
        "event_type": "purchase",
        "customer_id": "17850",
        "session_id": "s-536365",
        "timestamp": "2010-12-01T08:26:00Z",
        "product_id": "85123A",
        "quantity": 6,
        "amount": 15.3,
    }
    assert view["event_type"] == "page_view"
    assert view["page_url"] == "/products/85123A"
    assert view["timestamp"] < purchase["timestamp"]
    [refund] = events_of_line("C536379", "D", -1, dt.datetime(2010, 12, 1, 9, 41), 27.5, 14527, "x" * 32)
    assert (refund["event_type"], refund["amount"], refund["session_id"]) == ("refund", -27.5, "s-536379")


def test_replay_is_deterministic_and_exact_duplicate_lines_repeat_their_events() -> None:
    table = pq.read_table(DATA).slice(0, 5000)
    first = list(retail_events(table))
    assert first == list(retail_events(table))
    ids = [e["event_id"] for e in first]
    repeated = {i for i in ids if ids.count(i) > 1}
    assert repeated  # the extract has exact duplicate lines in its first rows
    for event_id in repeated:
        bodies = {json.dumps(e, sort_keys=True) for e in first if e["event_id"] == event_id}
        assert len(bodies) == 1  # repeated ids always carry the same body
    # Invoices replay in time order; a shopper's page views come just before the purchases they lead to.
    purchases = [e["timestamp"] for e in first if e["event_type"] in ("purchase", "refund")]
    assert purchases == sorted(purchases)


def test_malformed_records_cycle_through_their_kinds() -> None:
    records = malformed_records(10)
    assert len(records) == len(set(records)) == 10
    assert records[0].startswith(b"this is not json")


def test_failed_records_are_retried_until_they_go() -> None:
    tries: list[int] = []

    def flaky(records: Sequence[Record]) -> list[Record]:
        tries.append(len(records))
        return list(records[:2]) if len(tries) < 3 else []  # two records fail twice, then everything goes

    retry_failed([(str(i), b"x") for i in range(10)], flaky, sleep=lambda _: None)
    assert tries == [10, 2, 2]

    with pytest.raises(ProducerError, match="3 records could not be delivered after 4 tries"):
        retry_failed(
            [(str(i), b"x") for i in range(3)], lambda records: list(records), attempts=4, sleep=lambda _: None
        )


def test_files_sink_writes_complete_files_only(tmp_path: Path) -> None:
    sink = FilesSink(str(tmp_path))
    sink.send([("k", b'{"a":1}'), ("k", b'{"b":\n2}')])
    [written] = list(tmp_path.iterdir())
    assert written.name.startswith("events-")
    assert written.read_bytes() == b'{"a":1}\n{"b": 2}\n'
