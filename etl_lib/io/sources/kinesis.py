"""A Spark streaming source for Amazon Kinesis Data Streams, written with PySpark's Python Data Source API.

On Databricks the runtime's ``kinesis`` source is used and on EMR its ``aws-kinesis`` connector (see
``speed.kinesis.connector``); neither runs outside those platforms (the EMR connector is not published to
Maven Central). This source runs anywhere Spark 4 does and talks to any Kinesis endpoint through boto3,
the local one included.

Offsets are ``{shard id: last sequence number read}``; a batch is re-read after a failure by sequence
numbers, so replays are deterministic. Records are polled on the driver, which suits modest rates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from pyspark.sql.datasource import DataSource, SimpleDataSourceStreamReader
from pyspark.sql.types import StructType

NAME = "etl_suite_kinesis"
SCHEMA = (
    "stream STRING, shardId STRING, sequenceNumber STRING, partitionKey STRING, "
    "approximateArrivalTimestamp TIMESTAMP, data BINARY"
)
#: Offset of a shard nothing has been read from yet.
START = ""


#: Attempts of each Kinesis call, the first included (botocore's standard retry mode: throttling, 5xx errors and
#: timeouts retried with exponential backoff and jitter). Kinesis answers a busy shard with
#: ``ProvisionedThroughputExceededException`` and a passing fault with a 500, which the default of 3 attempts gives
#: up on. (The local endpoint's errors under a steady 5,000 records a second are not passing: these fail too.)
MAX_ATTEMPTS = 10


def kinesis_client(options: dict[str, str]) -> Any:
    """A boto3 Kinesis client from the (lower-cased) source options; credentials from the default chain unless given."""
    import boto3
    from botocore.config import Config

    retries = {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    arguments: dict[str, Any] = {"region_name": options.get("region") or None, "config": Config(retries=retries)}
    if options.get("endpointurl"):
        arguments["endpoint_url"] = options["endpointurl"]
    if options.get("awsaccesskeyid"):
        arguments["aws_access_key_id"] = options["awsaccesskeyid"]
        arguments["aws_secret_access_key"] = options.get("awssecretkey", "")
    return boto3.client("kinesis", **arguments)


class KinesisStreamReader(SimpleDataSourceStreamReader):
    """Reads every shard of a stream from the offsets Spark checkpoints."""

    def __init__(self, options: dict[str, str]) -> None:
        # Spark hands options over case-insensitively; they are read here in lower case.
        self.options = {key.lower(): value for key, value in options.items()}
        if "streamname" not in self.options:
            raise ValueError("the etl_suite_kinesis source needs the option streamName")
        self.stream = self.options["streamname"]
        self.starting_position = self.options.get("startingposition", "TRIM_HORIZON")
        self.limit = int(self.options.get("maxrecordspershard", "10000"))
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = kinesis_client(self.options)
        return self._client

    def _shards(self) -> list[str]:
        shards: list[str] = []
        arguments: dict[str, Any] = {"StreamName": self.stream}
        while True:
            response = self.client.list_shards(**arguments)
            shards.extend(shard["ShardId"] for shard in response["Shards"])
            token = response.get("NextToken")
            if not token:
                return shards
            arguments = {"NextToken": token}

    def initialOffset(self) -> dict[str, str]:  # noqa: N802 - Spark's name
        return dict.fromkeys(self._shards(), START)

    def _iterator(self, shard: str, after: str) -> str | None:
        if after == START:
            response = self.client.get_shard_iterator(
                StreamName=self.stream, ShardId=shard, ShardIteratorType=self.starting_position
            )
        else:
            response = self.client.get_shard_iterator(
                StreamName=self.stream,
                ShardId=shard,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=after,
            )
        iterator: str | None = response.get("ShardIterator")
        return iterator

    def _records(self, shard: str, after: str, upto: str | None, limit: int) -> Iterator[dict[str, Any]]:
        """Records of ``shard`` after sequence ``after``, up to sequence ``upto`` or ``limit`` records."""
        iterator = self._iterator(shard, after)
        count = 0
        while iterator and count < limit:
            response = self.client.get_records(ShardIterator=iterator, Limit=min(10_000, limit - count))
            for record in response["Records"]:
                if upto is not None and int(record["SequenceNumber"]) > int(upto):
                    return
                yield record
                count += 1
                if upto is not None and record["SequenceNumber"] == upto:
                    return
            if not response["Records"] and (upto is None or response.get("MillisBehindLatest", 0) == 0):
                return
            iterator = response.get("NextShardIterator")

    def _row(self, shard: str, record: dict[str, Any]) -> tuple[Any, ...]:
        arrived = record.get("ApproximateArrivalTimestamp")
        if isinstance(arrived, dt.datetime) and arrived.tzinfo is None:
            arrived = arrived.replace(tzinfo=dt.UTC)
        return (
            self.stream,
            shard,
            record["SequenceNumber"],
            record.get("PartitionKey"),
            arrived,
            bytes(record["Data"]),
        )

    def read(self, start: dict[str, str]) -> tuple[Iterator[tuple[Any, ...]], dict[str, str]]:
        end = dict(start)
        rows: list[tuple[Any, ...]] = []
        for shard in self._shards():
            after = start.get(shard, START)
            for record in self._records(shard, after, None, self.limit):
                rows.append(self._row(shard, record))
                end[shard] = record["SequenceNumber"]
            end.setdefault(shard, after)
        return iter(rows), end

    def readBetweenOffsets(self, start: dict[str, str], end: dict[str, str]) -> Iterator[tuple[Any, ...]]:  # noqa: N802
        for shard, upto in end.items():
            after = start.get(shard, START)
            if upto in (after, START):
                continue
            for record in self._records(shard, after, upto, 10**9):
                yield self._row(shard, record)

    def commit(self, end: dict[str, str]) -> None:
        """Nothing to acknowledge: Kinesis keeps records for their retention period."""


class KinesisDataSource(DataSource):
    """``spark.readStream.format("etl_suite_kinesis").option("streamName", ...)``."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def schema(self) -> str:
        return SCHEMA

    def simpleStreamReader(self, schema: StructType) -> SimpleDataSourceStreamReader:  # noqa: N802 - Spark's name
        return KinesisStreamReader(dict(self.options))
