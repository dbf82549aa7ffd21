"""A Spark standalone cluster on loopback: one master and its workers, from the installed pyspark.

Jobs run on it with ``--set spark.master=spark://127.0.0.1:<port>`` instead of local mode, which is how the
tests show that nothing depends on local mode or on files only the driver sees. Every process binds to
loopback (``SPARK_LOCAL_IP``, which the web UIs follow too).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from etl_lib.config import ServicesConfig, SparkClusterServiceConfig
from etl_lib.errors import ServiceError
from etl_lib.services.base import LocalService
from etl_lib.services.process import ManagedProcess, ServiceStatus, port_is_open

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def _spark_class() -> str:
    found = Path(sys.executable).parent / "spark-class"
    if not found.is_file():
        raise ServiceError("spark: spark-class not found beside the Python interpreter; `make setup` installs pyspark")
    return str(found)


class SparkClusterService(LocalService):
    """``etl-suite services up spark``: a master and ``services.spark.workers`` workers."""

    name = "spark"

    def __init__(self, services: ServicesConfig) -> None:
        super().__init__(services)
        self.cluster: SparkClusterServiceConfig = services.spark
        self.workers = [
            ManagedProcess(f"spark-worker-{index}", self.state_dir / f"worker-{index}")
            for index in range(1, self.cluster.workers + 1)
        ]

    @property
    def endpoint(self) -> str:
        return self.cluster.master_url

    def _env(self) -> dict[str, str]:
        return {"SPARK_LOCAL_IP": self.cluster.host, "SPARK_NO_DAEMONIZE": "1", "PYSPARK_PYTHON": sys.executable}

    def _start(self) -> None:
        spark_class = _spark_class()
        cluster = self.cluster
        master = [
            spark_class,
            MASTER,
            "--host",
            cluster.host,
            "--port",
            str(cluster.port),
            "--webui-port",
            str(cluster.webui_port),
        ]
        self.process.start(master, marker=f"{MASTER} --host {cluster.host} --port {cluster.port}", env=self._env())
        for worker in self.workers:
            work_dir = worker.state_dir / "work"
            work_dir.mkdir(parents=True, exist_ok=True)
            command = [
                spark_class,
                WORKER,
                "--host",
                cluster.host,
                "--cores",
                str(cluster.worker_cores),
                "--memory",
                cluster.worker_memory,
                "--webui-port",
                "0",
                "--work-dir",
                str(work_dir),
                cluster.master_url,
            ]
            worker.start(command, marker=f"{WORKER} --host {cluster.host}", env=self._env())

    def up(self) -> ServiceStatus:
        """Start the master and the workers unless they run, and wait until every worker has registered."""
        if self.process.pid() is None:
            for worker in self.workers:  # workers of a master that is gone would not find the new one
                worker.stop()
            if port_is_open(self.host, self.port):
                raise ServiceError(
                    f"spark: port {self.host}:{self.port} is already in use by a program the suite did not start; "
                    "stop it or choose another port (services.spark.port)"
                )
            self._start()
        self.process.wait_until(self._healthy_quietly, self.services.start_timeout_seconds, self.endpoint)
        return self.status()

    def down(self) -> bool:
        """Stop the workers, then the master. Returns True if the master was running."""
        for worker in self.workers:
            worker.stop()
        return self.process.stop()

    def master_state(self) -> dict[str, object]:
        """The master's own account of the cluster (its web UI's JSON)."""
        url = f"http://{self.cluster.host}:{self.cluster.webui_port}/json/"
        with urllib.request.urlopen(url, timeout=5) as response:
            state: dict[str, object] = json.loads(response.read())
        return state

    def healthy(self) -> bool:
        dead = [worker.name for worker in self.workers if worker.exited()]
        if dead:
            raise ServiceError(f"spark: {', '.join(dead)} exited; see the logs under {self.state_dir}")
        state = self.master_state()
        return state.get("status") == "ALIVE" and state.get("aliveworkers") == self.cluster.workers
