"""Event streams (Kafka, Kinesis, a landing folder of JSON lines) read as one shape of raw records.

Whatever the source, the speed layer sees ``_source``, ``_stream``, ``_partition``, ``_offset`` (topic,
partition and offset; stream, shard and sequence number; folder and file), ``_arrived_at`` and the
record's bytes untouched in ``payload``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import ServicesConfig, SpeedConfig
from etl_lib.core.capture import record_read
from etl_lib.errors import ConfigError


def kafka_bootstrap(speed: SpeedConfig, services: ServicesConfig) -> str:
    """The brokers to use: the configured ones, else the local broker."""
    return speed.kafka.bootstrap_servers or services.kafka.bootstrap_servers


def kinesis_endpoint(speed: SpeedConfig, services: ServicesConfig) -> tuple[str | None, str | None]:
    """``(endpoint url, region)`` of the Kinesis stream (the local endpoint when so configured)."""
    if speed.kinesis.local_endpoint:
        return services.aws.endpoint_url, speed.kinesis.region or services.aws.region
    return speed.kinesis.endpoint_url, speed.kinesis.region


def _kafka(spark: SparkSession, speed: SpeedConfig, services: ServicesConfig) -> DataFrame:
    kafka = speed.kafka
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", kafka_bootstrap(speed, services))
        .option("subscribe", kafka.topic)
        .option("startingOffsets", kafka.starting_offsets)
        .option("failOnDataLoss", str(kafka.fail_on_data_loss).lower())
        .option("kafka.fetch.max.wait.ms", str(kafka.fetch_max_wait_ms))
    )
    if kafka.max_offsets_per_trigger is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(kafka.max_offsets_per_trigger))
    return reader.load().select(
        F.lit("kafka").alias("_source"),
        F.col("topic").alias("_stream"),
        F.col("partition").cast("string").alias("_partition"),
        F.col("offset").cast("string").alias("_offset"),
        F.col("timestamp").alias("_arrived_at"),
        F.col("value").alias("payload"),
    )


def _kinesis(spark: SparkSession, speed: SpeedConfig, services: ServicesConfig) -> DataFrame:
    kinesis = speed.kinesis
    endpoint, region = kinesis_endpoint(speed, services)
    if kinesis.connector == "python":
        if int(spark.version.split(".")[0]) < 4:
            raise ConfigError(
                f"speed.kinesis.connector: python is a Python streaming source, which needs Spark 4 (this is "
                f"Spark {spark.version}); on Spark 3.5 use the platform's Kinesis source: connector databricks "
                "(Databricks runtimes) or emr (EMR releases)"
            )
        from etl_lib.config.secrets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
        from etl_lib.io.sources.kinesis import NAME, KinesisDataSource

        spark.dataSource.register(KinesisDataSource)
        reader = (
            spark.readStream.format(NAME)
            .option("streamName", kinesis.stream)
            .option("startingPosition", kinesis.starting_position)
            .option("maxRecordsPerShard", str(kinesis.max_records_per_shard))
        )
        if region:
            reader = reader.option("region", region)
        if endpoint:
            reader = reader.option("endpointUrl", endpoint)
        if kinesis.local_endpoint:
            reader = reader.option("awsAccessKeyId", LOCAL_ACCESS_KEY).option("awsSecretKey", LOCAL_SECRET_KEY)
        frame = reader.load()
        stream, shard, sequence = "stream", "shardId", "sequenceNumber"
    elif kinesis.connector == "databricks":
        reader = spark.readStream.format("kinesis").option("streamName", kinesis.stream)
        reader = reader.option("initialPosition", kinesis.starting_position.lower())
        if region:
            reader = reader.option("region", region)
        if endpoint:
            reader = reader.option("endpoint", endpoint)
        frame = reader.load()
        stream, shard, sequence = "stream", "shardId", "sequenceNumber"
    else:
        reader = spark.readStream.format("aws-kinesis").option("kinesis.streamName", kinesis.stream)
        reader = reader.option("kinesis.startingPosition", kinesis.starting_position)
        reader = reader.option("kinesis.consumerType", "GetRecords")
        if region:
            reader = reader.option("kinesis.region", region)
        if endpoint:
            reader = reader.option("kinesis.endpointUrl", endpoint)
        frame = reader.load()
        stream, shard, sequence = "streamName", "shardId", "sequenceNumber"
    return frame.select(
        F.lit("kinesis").alias("_source"),
        F.col(stream).alias("_stream"),
        F.col(shard).alias("_partition"),
        F.col(sequence).alias("_offset"),
        F.col("approximateArrivalTimestamp").alias("_arrived_at"),
        F.col("data").alias("payload"),
    )


def _files(spark: SparkSession, speed: SpeedConfig) -> DataFrame:
    reader = spark.readStream.format("text")
    if speed.files.max_files_per_trigger is not None:
        reader = reader.option("maxFilesPerTrigger", str(speed.files.max_files_per_trigger))
    return reader.load(speed.files.path).select(
        F.lit("files").alias("_source"),
        F.lit(speed.files.path).alias("_stream"),
        F.col("_metadata.file_name").alias("_partition"),
        F.lit(None).cast("string").alias("_offset"),
        F.col("_metadata.file_modification_time").alias("_arrived_at"),
        F.encode(F.col("value"), "UTF-8").alias("payload"),
    )


def read_event_stream(spark: SparkSession, speed: SpeedConfig, services: ServicesConfig) -> DataFrame:
    """The configured event stream as raw records.

    Raises:
        ConfigError: for a landing folder that does not exist (a stream needs it to start).
    """
    if speed.source == "kafka":
        record_read(f"kafka:{kafka_bootstrap(speed, services)}/{speed.kafka.topic}", None)
        return _kafka(spark, speed, services)
    if speed.source == "kinesis":
        record_read(f"kinesis:{speed.kinesis.stream}", None)
        return _kinesis(spark, speed, services)
    record_read(f"files:{speed.files.path}", None)
    from etl_lib.config import is_uri

    if not is_uri(speed.files.path):
        from pathlib import Path

        if not Path(speed.files.path).is_dir():
            raise ConfigError(f"speed.files.path: {speed.files.path} does not exist; create it or produce into it")
    return _files(spark, speed)
