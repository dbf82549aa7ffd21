"""Real services for integration tests, started by the suite's own code and stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig
from etl_lib.io import lakehouse
from etl_lib.services.aws import AwsService
from etl_lib.services.base import LocalService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import PostgresService
from etl_lib.services.redis import RedisService
from etl_lib.services.spark import SparkClusterService
from tests.waiting import wait_until

S = TypeVar("S", bound=LocalService)
PROJECT = Path(__file__).resolve().parents[2]


class SuiteRun:
    """``etl-suite run JOB`` on conf/test.yaml as a process group of its own, its output collected as it comes."""

    def __init__(self, job: str, root: Path, settings: dict[str, str], arguments: Sequence[str] = ()) -> None:
        command = [
            str(Path(sys.executable).parent / "etl-suite"),
            "run",
            job,
            *arguments,
            "--conf",
            str(PROJECT / "conf" / "test.yaml"),
            "--set",
            f"lakehouse.root={root}",
        ]
        for key, value in settings.items():
            command += ["--set", f"{key}={value}"]
        self.process = subprocess.Popen(
            command,
            cwd=root.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYSPARK_PYTHON": sys.executable},
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for(self, text: str, timeout: float) -> None:
        def printed() -> bool:
            assert self.running(), f"ended before {text!r}:\n{self.output[-5000:]}"
            return text in self.output

        wait_until(printed, f"{text!r} in the output of {self.process.args}", timeout)

    def signal(self, number: signal.Signals) -> None:
        """Send ``number`` to the run and every process it started (its driver JVM, its Python workers)."""
        os.killpg(self.process.pid, number)

    def finish(self, timeout: float = 600) -> int:
        code = self.process.wait(timeout)
        self._reader.join(30)
        return code


@pytest.fixture
def suite_run() -> type[SuiteRun]:
    """Starts ``etl-suite run`` processes: ``suite_run(job, root, settings, arguments)``."""
    return SuiteRun


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
