"""Real services for integration tests, started by the suite's own code and stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from etl_lib.config import SuiteConfig
from etl_lib.services.aws import AwsService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService


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
