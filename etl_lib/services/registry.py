"""The local services by name, as ``etl-suite services`` and the tests address them."""

from __future__ import annotations

from etl_lib.config import ServicesConfig
from etl_lib.errors import UsageError
from etl_lib.services.aws import AwsService
from etl_lib.services.base import LocalService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService
from etl_lib.services.redis import RedisService
from etl_lib.services.spark import SparkClusterService

SERVICES: dict[str, type[LocalService]] = {
    "kafka": KafkaService,
    "postgres": PostgresService,
    "aws": AwsService,
    "redis": RedisService,
    "spark": SparkClusterService,
}


def get_services(services: ServicesConfig, names: list[str] | None = None) -> list[LocalService]:
    """Service objects for ``names`` (all when empty), in a stable order.

    Raises:
        UsageError: for a name that is not a known service.
    """
    wanted = names or list(SERVICES)
    unknown = [name for name in wanted if name not in SERVICES]
    if unknown:
        raise UsageError(f"unknown service {', '.join(unknown)}; known services: {', '.join(SERVICES)}")
    return [SERVICES[name](services) for name in wanted]
