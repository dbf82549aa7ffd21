from __future__ import annotations

import json
import time

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig
from etl_lib.errors import ServiceError
from etl_lib.io.clients import local_client
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService


def test_kafka_produce_then_consume_with_a_client_and_with_spark(kafka: KafkaService, spark: SparkSession) -> None:
    from confluent_kafka import Consumer, Producer

    topic = f"roundtrip-{time.time_ns()}"
    producer = Producer({"bootstrap.servers": kafka.endpoint, "enable.idempotence": True})
    sent = [{"event_id": f"e{i}", "n": i} for i in range(20)]
    for event in sent:
        producer.produce(topic, key=event["event_id"], value=json.dumps(event))
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka.endpoint, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received: list[dict[str, object]] = []
    deadline = time.monotonic() + 60
    while len(received) < len(sent) and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            received.append(json.loads(message.value()))
    consumer.close()
    assert received == sent

    # The same records through Spark's Kafka source: the connector jars load from the local cache.
    frame = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.endpoint)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "offset")
    )
    expected = spark.createDataFrame(
        [(e["event_id"], json.dumps(e), i) for i, e in enumerate(sent)], "key STRING, value STRING, offset BIGINT"
    )
    assert_df_equality(frame, expected, ignore_nullable=True, ignore_row_order=True)


def test_services_up_is_idempotent_and_status_reports_it(kafka: KafkaService) -> None:
    pid = kafka.process.pid()
    again = kafka.up()
    assert again.running
    assert again.pid == pid
    assert kafka.status().endpoint == kafka.endpoint


def test_postgres_with_password_auth_read_by_spark_jdbc(postgres: PostgresService, spark: SparkSession) -> None:
    import psycopg

    pg = postgres.pg
    with psycopg.connect(
        host=pg.host, port=pg.port, user=pg.user, password=postgres.password(), dbname=pg.database, autocommit=True
    ) as connection:
        connection.execute("DROP TABLE IF EXISTS orders_probe")
        connection.execute("CREATE TABLE orders_probe (invoice_no TEXT PRIMARY KEY, quantity INT, price NUMERIC(10,2))")
        connection.execute("INSERT INTO orders_probe VALUES ('536365', 6, 2.55), ('C536379', -1, 27.50)")

    frame = (
        spark.read.format("jdbc")
        .option("url", pg.jdbc_url)
        .option("dbtable", "orders_probe")
        .option("user", pg.user)
        .option("password", postgres.password())
        .option("driver", "org.postgresql.Driver")
        .load()
    )
    expected = spark.createDataFrame(
        [("536365", 6, "2.55"), ("C536379", -1, "27.50")], "invoice_no STRING, quantity INT, price STRING"
    ).selectExpr("invoice_no", "quantity", "CAST(price AS DECIMAL(10,2)) AS price")
    # JDBC attaches column metadata (scale, type name); the values and types are what matter.
    assert_df_equality(frame, expected, ignore_nullable=True, ignore_row_order=True, ignore_metadata=True)

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=pg.host, port=pg.port, user=pg.user, password="wrong", dbname=pg.database)


def test_aws_endpoint_serves_s3_and_kinesis(aws: AwsService) -> None:
    s3 = local_client(aws.aws, "s3")
    s3.create_bucket(Bucket="lakehouse-probe")
    s3.put_object(Bucket="lakehouse-probe", Key="landing/a.json", Body=b'{"a": 1}\n')
    assert s3.get_object(Bucket="lakehouse-probe", Key="landing/a.json")["Body"].read() == b'{"a": 1}\n'

    kinesis = local_client(aws.aws, "kinesis")
    kinesis.create_stream(StreamName="events-probe", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName="events-probe", WaiterConfig={"Delay": 0.2})
    kinesis.put_records(
        StreamName="events-probe",
        Records=[{"Data": json.dumps({"i": i}).encode(), "PartitionKey": str(i)} for i in range(5)],
    )
    shard = kinesis.describe_stream(StreamName="events-probe")["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="events-probe", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [json.loads(r["Data"]) for r in records] == [{"i": i} for i in range(5)]


def test_down_stops_and_a_taken_port_is_reported(
    suite_config: SuiteConfig, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A port of its own, apart from the session's `aws` fixture.
    aws_config = suite_config.services.aws.model_copy(update={"port": 14567})
    services = suite_config.services.model_copy(
        update={"work_dir": str(tmp_path_factory.mktemp("aws-2")), "aws": aws_config}
    )
    first = AwsService(services)
    assert first.up().running
    # A second state folder on the same port: the port is taken by a server this folder did not start.
    other = AwsService(services.model_copy(update={"work_dir": str(tmp_path_factory.mktemp("aws-3"))}))
    with pytest.raises(ServiceError, match=r"aws: port 127\.0\.0\.1:14567 is already in use"):
        other.up()
    assert first.down() is True
    status = first.status()
    assert (status.running, status.pid, status.detail) == (False, None, "stopped")
    assert first.down() is False
