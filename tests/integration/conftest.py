"""Real services for integration tests, started by the suite's own code and stopped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from etl_lib.config import SuiteConfig
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService
from etl_lib.services.redis import RedisService


@pytest.fixture(scope="session")
def kafka(suite_config: SuiteConfig) -> Iterator[KafkaService]:
    service = KafkaService(suite_config.services)
    service.up()
    yield service
    service.down()


@pytest.fixture(scope="session")
def postgres(suite_config: SuiteConfig) -> Iterator[PostgresService]:
    service = PostgresService(suite_config.services)
    service.up()
    yield service
    service.down()


@pytest.fixture(scope="session")
def aws(suite_config: SuiteConfig) -> Iterator[AwsService]:
    service = AwsService(suite_config.services)
    service.up()
    yield service
    service.down()


#: The password the test Redis server requires (a test value, set in the environment as a user would).
REDIS_TEST_PASSWORD = "redis-test-password"


@pytest.fixture(scope="session")
def redis_server(suite_config: SuiteConfig) -> Iterator[RedisService]:
    variable = suite_config.services.redis.password_env
    previous = os.environ.get(variable)
    os.environ[variable] = REDIS_TEST_PASSWORD
    service = RedisService(suite_config.services)
    service.up()
    yield service
    service.down()
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous
