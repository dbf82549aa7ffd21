"""Real services for integration tests, started by the suite's own code and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib import lakehouse
from etl_lib.config import SuiteConfig
from etl_lib.services.aws import AwsService
from etl_lib.services.base import LocalService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService
from etl_lib.services.redis import RedisService
from etl_lib.services.spark import SparkClusterService

S = TypeVar("S", bound=LocalService)


def _statuses_by_run(spark: SparkSession, path: str) -> list[list[str]]:
    runs = lakehouse.read(spark, path)
    grouped = runs.groupBy("run_id").agg(F.collect_list("status").alias("statuses")).collect()
    return sorted(sorted(row["statuses"]) for row in grouped)


@pytest.fixture
def run_statuses() -> Callable[[SparkSession, str], list[list[str]]]:
    """Reads an ``audit/etl_runs`` table: each run's statuses, sorted, for runs in sorted order."""
    return _statuses_by_run


def _running(service: S) -> Iterator[S]:
    """The service, started (unless it runs) for the tests that use it and stopped after them."""
    service.up()
    yield service
    service.down()


@pytest.fixture(scope="session")
def kafka(suite_config: SuiteConfig) -> Iterator[KafkaService]:
    yield from _running(KafkaService(suite_config.services))


@pytest.fixture(scope="session")
def postgres(suite_config: SuiteConfig) -> Iterator[PostgresService]:
    yield from _running(PostgresService(suite_config.services))


@pytest.fixture(scope="session")
def aws(suite_config: SuiteConfig) -> Iterator[AwsService]:
    yield from _running(AwsService(suite_config.services))


@pytest.fixture(scope="session")
def spark_cluster(suite_config: SuiteConfig) -> Iterator[SparkClusterService]:
    yield from _running(SparkClusterService(suite_config.services))


#: The password the test Redis server requires (a test value, set in the environment as a user would).
REDIS_TEST_PASSWORD = "redis-test-password"


@pytest.fixture(scope="session")
def redis_server(suite_config: SuiteConfig) -> Iterator[RedisService]:
    variable = suite_config.services.redis.password_env
    previous = os.environ.get(variable)
    os.environ[variable] = REDIS_TEST_PASSWORD
    yield from _running(RedisService(suite_config.services))
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous
