"""A local AWS-compatible endpoint (moto's server): S3, Kinesis, Glue, CloudWatch, SNS, EMR, ... on loopback."""

from __future__ import annotations

import json
import sys
import urllib.request

from etl_lib.config import AwsServiceConfig, ServicesConfig
from etl_lib.io.clients import local_client
from etl_lib.services.base import LocalService
from etl_lib.services.process import ServiceStatus


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
        # moto's request recorder (off until started through /moto-api/recorder) keeps its file with the service's
        # state, not in the folder the server was started from.
        recording = {"MOTO_RECORDER_FILEPATH": str(self.state_dir / "recording")}
        self.process.start(command, marker=f"aws_server -H {self.aws.host} -p {self.aws.port}", env=recording)

    def up(self) -> ServiceStatus:
        """Start the endpoint (unless it runs) and have Step Functions executions run their state machine.

        By default moto records an execution as started and leaves it running forever; told to (its documented
        ``/moto-api/config``), it runs the state machine's definition, as AWS does, so an execution succeeds or
        fails by its states.
        """
        status = super().up()
        settings = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        url = f"{self.endpoint}/moto-api/config"  # the local endpoint, http
        request = urllib.request.Request(url, data=settings, headers={"Content-Type": "application/json"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()
        return status

    def healthy(self) -> bool:
        client = local_client(self.aws, "sts")
        identity = client.get_caller_identity()
        return bool(identity.get("Account"))
