"""The producer's retry against a real refusal: a Kafka broker that refuses every batch, until it takes them."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from etl_lib.producer.events import encode, retail_events
from etl_lib.producer.sinks import KafkaSink
from etl_lib.services.kafka import KafkaService
from tests.waiting import wait_until

# The producer is the suite's own Python, the same on both lines.
pytestmark = pytest.mark.primary_line

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail" / "online_retail.parquet"


def set_max_message_bytes(admin: AdminClient, topic: str, size: int) -> None:
    """The largest record batch the broker takes on ``topic`` (Kafka's ``max.message.bytes``)."""
    resource = ConfigResource("topic", topic, set_config={"max.message.bytes": str(size)})
    for future in admin.alter_configs([resource]).values():
        future.result(30)


def consumed(endpoint: str, topic: str, expected: int) -> list[bytes]:
    """Every record of ``topic``, read from the start until ``expected`` are in (or 30 s pass)."""
    consumer = Consumer({"bootstrap.servers": endpoint, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    try:
        while dt.datetime.now(dt.UTC) < deadline:
            message = consumer.poll(0.5)
            value = None if message is None or message.error() else message.value()
            if value is not None:
                values.append(value)
            if len(values) >= expected and message is None:
                break
    finally:
        consumer.close()
    return values


def test_batches_the_broker_refuses_are_sent_again_until_it_takes_them_each_once(
    kafka: KafkaService, caplog: pytest.LogCaptureFixture
) -> None:
    topic = f"refusing-{dt.datetime.now(dt.UTC):%H%M%S%f}"
    admin = AdminClient({"bootstrap.servers": kafka.endpoint})
    # A topic whose broker refuses any batch over 100 bytes (MESSAGE_TOO_LARGE, which the client does not retry).
    created = admin.create_topics([NewTopic(topic, 2, 1, config={"max.message.bytes": "100"})])
    for future in created.values():
        future.result(30)
    records = [(e["customer_id"], encode(e)) for e in itertools.islice(retail_events(pq.read_table(DATA)), 300)]
    sink = KafkaSink(kafka.endpoint, topic, 2)
    failure: list[BaseException] = []

    def send() -> None:
        try:
            sink.send(records)
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            failure.append(error)

    caplog.set_level(logging.WARNING, logger="etl_lib.producer.sinks")
    sending = threading.Thread(target=send)
    sending.start()
    wait_until(lambda: "300 of the records failed (try 1 of 8)" in caplog.text, "the broker refusing a try", 60)
    # The broker takes batches again while the producer waits to retry.
    set_max_message_bytes(admin, topic, 1_048_588)
    sending.join(90)
    assert not sending.is_alive()
    assert failure == []
    assert "records failed (try 1 of 8); retrying" in caplog.text
    assert sorted(consumed(kafka.endpoint, topic, len(records))) == sorted(data for _, data in records)
