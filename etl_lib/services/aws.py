"""A local AWS-compatible endpoint (moto's server): S3, Kinesis, Glue, CloudWatch, SNS, EMR, ... on loopback."""

from __future__ import annotations

import sys
from typing import Any

from etl_lib.config import AwsServiceConfig, ServicesConfig
from etl_lib.services.base import LocalService

#: The local endpoint accepts any credentials; these are placeholders, not secrets.
LOCAL_ACCESS_KEY = "local"
LOCAL_SECRET_KEY = "local"  # noqa: S105 - not a secret: the loopback endpoint ignores it


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


class AwsService(LocalService):
    """``etl-suite services up aws``."""

    name = "aws"

    def __init__(self, services: ServicesConfig) -> None:
        super().__init__(services)
        self.aws: AwsServiceConfig = services.aws

    @property
    def endpoint(self) -> str:
        return self.aws.endpoint_url

    def _start(self) -> None:
        # moto's application behind a server that lets it answer one request at a time (see aws_server).
        command = [sys.executable, "-m", "etl_lib.services.aws_server", "-H", self.aws.host, "-p", str(self.aws.port)]
        self.process.start(command, marker=f"aws_server -H {self.aws.host} -p {self.aws.port}")

    def healthy(self) -> bool:
        client = local_client(self.aws, "sts")
        identity = client.get_caller_identity()
        return bool(identity.get("Account"))
