"""Clients of the AWS endpoint and the Redis server a configuration names, for the capabilities that call them."""

from __future__ import annotations

from typing import Any

from etl_lib.config import AwsServiceConfig, RedisServiceConfig, secret_from_env
from etl_lib.config.secrets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY


def local_client(aws: AwsServiceConfig, service: str, config: Any = None) -> Any:
    """A boto3 client for ``service`` talking to the local endpoint (``config``: botocore client settings)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=aws.endpoint_url,
        region_name=aws.region,
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_SECRET_KEY,
        config=config,
    )


def redis_client(redis: RedisServiceConfig, timeout: float = 5.0) -> Any:
    """A client of the configured server; the password, if any, comes from ``$<password_env>``."""
    import redis as redis_py

    return redis_py.Redis(
        host=redis.host,
        port=redis.port,
        db=redis.db,
        password=secret_from_env(redis.password_env),
        ssl=redis.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )
