"""Customer events made from the Online Retail transactions, deterministically.

Every line of an invoice with a known customer becomes a ``purchase`` event (a ``refund`` for a
cancellation invoice), stamped with the invoice time; each purchase is preceded by a ``page_view`` of the
product shortly before. Ids and times depend only on the line's own values, so an exact duplicate line of
the extract becomes an exact duplicate event, which the speed layer drops as the batch layer drops the line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
)
_MILLI = Decimal("0.001")


def _iso(moment: dt.datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def line_digest(values: tuple[Any, ...]) -> str:
    """A digest of one extract line's values (equal for exact duplicates only)."""
    text = json.dumps([str(value) if value is not None else None for value in values])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def events_of_line(
    invoice_no: str,
    stock_code: str,
    quantity: int,
    invoice_date: dt.datetime,
    unit_price: float,
    customer_id: int,
    digest: str,
) -> list[dict[str, Any]]:
    """The events one purchase line stands for (a page view then the purchase, or a refund).

    Args:
        invoice_no: the invoice; one starting with ``C`` is a cancellation, whose line is a refund.
        stock_code: the product, for ``product_id`` and the page view's URL.
        quantity: the units bought (negative for a cancellation).
        invoice_date: when the invoice was made; its wall-clock time is the events' time, as UTC (a zone is dropped).
        unit_price: the price of one unit; the amount is it, rounded to 0.001, times ``quantity``.
        customer_id: the customer's number (the extract's ``CustomerID``).
        digest: :func:`line_digest` of the line's values; the event ids and the page view's lead come from it.
    """
    customer = str(int(customer_id))
    session = f"s-{invoice_no.removeprefix('C')}"
    price = Decimal(str(unit_price)).quantize(_MILLI, rounding=ROUND_HALF_UP)
    amount = float(price * quantity)
    if invoice_no.startswith("C"):
        return [
            {
                "event_id": f"ref-{digest}",
                "event_type": "refund",
                "customer_id": customer,
                "session_id": session,
                "timestamp": _iso(invoice_date),
                "product_id": stock_code,
                "quantity": quantity,
                "amount": amount,
            }
        ]
    viewed_at = invoice_date - dt.timedelta(seconds=1 + int(digest[:4], 16) % 240)
    return [
        {
            "event_id": f"pv-{digest}",
            "event_type": "page_view",
            "customer_id": customer,
            "session_id": session,
            "timestamp": _iso(viewed_at),
            "page_url": f"/products/{stock_code}",
            "user_agent": USER_AGENTS[int(customer) % len(USER_AGENTS)],
        },
        {
            "event_id": f"pur-{digest}",
            "event_type": "purchase",
            "customer_id": customer,
            "session_id": session,
            "timestamp": _iso(invoice_date),
            "product_id": stock_code,
            "quantity": quantity,
            "amount": amount,
        },
    ]


def retail_events(rows: Any) -> Iterator[dict[str, Any]]:
    """Events of the Online Retail rows (a pyarrow table), in time order, customers known only.

    Within an invoice the page views come first, then the purchases, as a shopper would produce them.
    """
    import pyarrow.compute as pc

    known = rows.filter(pc.is_valid(rows["CustomerID"]))
    order = pc.sort_indices(known, sort_keys=[("InvoiceDate", "ascending"), ("InvoiceNo", "ascending")])
    ordered = known.take(order)
    columns = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
    pending: list[dict[str, Any]] = []
    current: tuple[str, dt.datetime] | None = None
    for batch in ordered.select(list(columns)).to_batches(10_000):
        for values in zip(*(column.to_pylist() for column in batch.columns), strict=True):
            invoice, code, _, quantity, invoice_date, price, customer, _ = values
            key = (invoice, invoice_date)
            if key != current and pending:
                yield from sorted(pending, key=lambda event: (event["timestamp"], event["event_type"] != "page_view"))
                pending = []
            current = key
            pending.extend(events_of_line(invoice, code, quantity, invoice_date, price, customer, line_digest(values)))
    yield from sorted(pending, key=lambda event: (event["timestamp"], event["event_type"] != "page_view"))


def malformed_records(count: int) -> list[bytes]:
    """``count`` records the speed layer must refuse, of every kind in turn."""
    kinds = [
        lambda n: b"this is not json " + str(n).encode(),
        lambda n: json.dumps({"event_type": "page_view", "customer_id": str(n)}).encode(),
        lambda n: json.dumps(
            {
                "event_id": f"bad-type-{n}",
                "event_type": "purchase",
                "customer_id": "12345",
                "session_id": "s-bad",
                "timestamp": "2011-01-01T00:00:00Z",
                "product_id": "85123A",
                "quantity": "six",
                "amount": 1.0,
            }
        ).encode(),
        lambda n: f"[{n}, 2, 3]".encode(),
        lambda n: json.dumps(
            {
                "event_id": f"bad-page-{n}",
                "event_type": "page_view",
                "customer_id": "1",
                "timestamp": "2011-01-01T00:00:00Z",
            }
        ).encode(),
    ]
    return [kinds[n % len(kinds)](n) for n in range(count)]


def encode(event: dict[str, Any]) -> bytes:
    """The wire form of an event: compact JSON."""
    return json.dumps(event, separators=(",", ":")).encode()
