"""A single-node Kafka broker in KRaft mode (broker and controller in one JVM)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from etl_lib.config import KafkaServiceConfig, ServicesConfig
from etl_lib.errors import ServiceError
from etl_lib.runtime.jars import cached_jars, kafka_broker_jar_set
from etl_lib.services.base import LocalService

_LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaServer
        level: INFO
"""


def java_executable() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise ServiceError("no Java runtime found (set JAVA_HOME or put `java` on PATH)")
    return found


class KafkaService(LocalService):
    """``etl-suite services up kafka``."""

    name = "kafka"

    def __init__(self, services: ServicesConfig) -> None:
        super().__init__(services)
        self.kafka: KafkaServiceConfig = services.kafka

    @property
    def endpoint(self) -> str:
        return self.kafka.bootstrap_servers

    def _classpath(self) -> str:
        jars = cached_jars(kafka_broker_jar_set())
        return os.pathsep.join(str(jar) for jar in jars)

    def _properties(self) -> str:
        k = self.kafka
        data_dir = self.state_dir / "data"
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={k.host}:{k.controller_port}",
                f"listeners=PLAINTEXT://{k.host}:{k.port},CONTROLLER://{k.host}:{k.controller_port}",
                f"advertised.listeners=PLAINTEXT://{k.host}:{k.port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data_dir}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ]
        )

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{self.kafka.heap}",
            f"-Xms{self.kafka.heap}",
            f"-Dlog4j2.configurationFile={self.state_dir / 'log4j2.yaml'}",
            "-cp",
            self._classpath(),
            main_class,
            *args,
        ]

    def _start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        properties = self.state_dir / "server.properties"
        properties.write_text(self._properties(), encoding="utf-8")
        (self.state_dir / "log4j2.yaml").write_text(_LOG4J2, encoding="utf-8")
        if not (self.state_dir / "data" / "meta.properties").is_file():
            cluster_id = "-"
            while cluster_id.startswith("-"):  # one id in 64 would read as an option, as Kafka's own ids avoid
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            formatted = subprocess.run(
                self._java(
                    "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id, "-c", str(properties)
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if formatted.returncode != 0:
                raise ServiceError(f"kafka: formatting the KRaft storage failed:\n{formatted.stdout}{formatted.stderr}")
        self.process.start(self._java("kafka.Kafka", str(properties)), marker=str(properties))

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.endpoint, "socket.timeout.ms": 2000})
        metadata = admin.list_topics(timeout=2)
        return len(metadata.brokers) >= 1
