"""Where produced records go: Kafka, Kinesis or a landing folder, in batches, failed records retried."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from etl_lib.errors import EtlSuiteError

log = logging.getLogger(__name__)

#: (partition key, bytes)
Record = tuple[str, bytes]


class ProducerError(EtlSuiteError):
    """Records could not be delivered after every retry."""


class Sink(Protocol):
    """Something records can be sent to."""

    def send(self, records: Sequence[Record]) -> None:
        """Deliver every record or raise :class:`ProducerError`."""


def retry_failed(
    records: Sequence[Record],
    attempt: Callable[[Sequence[Record]], list[Record]],
    attempts: int = 8,
    backoff_seconds: float = 0.1,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``records`` with ``attempt`` (which returns those that failed), retrying failures with backoff.

    Args:
        records: ``(partition key, bytes)`` of each record.
        attempt: sends the records it is given and returns those that failed (empty when all went).
        attempts: tries in all, the first one included.
        backoff_seconds: the wait after the first failed try, in seconds; it doubles after each next one.
        sleep: waits the given seconds.

    Raises:
        ProducerError: if records still fail after ``attempts`` tries.
    """
    pending = list(records)
    for tried in range(1, attempts + 1):
        pending = attempt(pending)
        if not pending:
            return
        log.warning("%d of the records failed (try %d of %d); retrying", len(pending), tried, attempts)
        sleep(backoff_seconds * 2 ** (tried - 1))
    raise ProducerError(f"{len(pending)} records could not be delivered after {attempts} tries")


class FilesSink:
    """JSON lines files in a landing folder; a file appears only when complete (written, then renamed)."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def send(self, records: Sequence[Record]) -> None:
        name = f"events-{time.time_ns()}-{uuid.uuid4().hex[:8]}.jsonl"
        partial = self.folder / f".{name}.partial"
        with partial.open("wb") as handle:
            for _, data in records:
                handle.write(data.replace(b"\n", b" ") + b"\n")
        os.replace(partial, self.folder / name)


class KafkaSink:
    """A Kafka topic (created with the configured partitions if missing), idempotent producer."""

    def __init__(self, bootstrap_servers: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": bootstrap_servers})
        if topic not in admin.list_topics(timeout=30).topics:
            futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
            for future in futures.values():
                try:
                    future.result(30)
                except Exception as error:  # a topic created meanwhile is fine
                    if "TOPIC_ALREADY_EXISTS" not in str(error):
                        raise ProducerError(f"cannot create topic {topic}: {error}") from error
        self.topic = topic
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 30_000,
            }
        )

    def _attempt(self, records: Sequence[Record]) -> list[Record]:
        failed: list[Record] = []

        def on_delivery(record: Record) -> Callable[[Any, Any], None]:
            def report(error: Any, message: Any) -> None:
                if error is not None:
                    failed.append(record)

            return report

        for record in records:
            while True:
                try:
                    self.producer.produce(
                        self.topic, key=record[0].encode(), value=record[1], on_delivery=on_delivery(record)
                    )
                    break
                except BufferError:
                    self.producer.poll(0.1)  # the local queue is full: let deliveries drain
        remaining = self.producer.flush(60)
        if remaining:
            raise ProducerError(f"{remaining} records were still queued after 60 s")
        return failed

    def send(self, records: Sequence[Record]) -> None:
        retry_failed(records, self._attempt)


class KinesisSink:
    """A Kinesis stream (created if missing); ``PutRecords`` in batches of 500, failed records retried."""

    def __init__(self, client: Any, stream: str, shards: int) -> None:
        self.client = client
        self.stream = stream
        names = client.list_streams().get("StreamNames", [])
        if stream not in names:
            client.create_stream(StreamName=stream, ShardCount=shards)
        client.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})

    def _attempt(self, records: Sequence[Record]) -> list[Record]:
        failed: list[Record] = []
        for start in range(0, len(records), 500):
            chunk = records[start : start + 500]
            response = self.client.put_records(
                StreamName=self.stream, Records=[{"Data": data, "PartitionKey": key} for key, data in chunk]
            )
            if response.get("FailedRecordCount", 0):
                failed.extend(
                    record for record, result in zip(chunk, response["Records"], strict=True) if "ErrorCode" in result
                )
        return failed

    def send(self, records: Sequence[Record]) -> None:
        retry_failed(records, self._attempt)
