"""The batch layer on a Spark standalone cluster (a master, two workers, on loopback) writes what local mode writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.runtime.runner import run_job
from etl_lib.services.spark import SparkClusterService
from tests.retail import RETAIL_TABLES

# A standalone cluster of the primary line's Spark (the batch layer on it runs twice: on the cluster and locally);
# the other line's local-mode and spark-submit tests cover its Spark (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]


def _comparable(frame: DataFrame) -> DataFrame:
    # What a run stamps on its rows (its id, when it ran) differs between any two runs.
    return frame.drop(*[name for name in frame.columns if name.startswith("_")])


@pytest.mark.slow
def test_the_batch_layer_on_a_standalone_cluster_writes_what_local_mode_writes(
    spark: SparkSession, suite_config: SuiteConfig, spark_cluster: SparkClusterService, tmp_path: Path
) -> None:
    cluster = spark_cluster
    whole = pq.read_table(PROJECT / "data" / "online_retail" / "online_retail.parquet")
    (tmp_path / "extract").mkdir()
    pq.write_table(whole.take(list(range(0, whole.num_rows, 40))), tmp_path / "extract" / "part.parquet")
    settings = {
        "sources.online_retail.path": str(tmp_path / "extract"),
        "run.process_date": "2011-12-10",
        "ml.work_dir": str(tmp_path / "mlflow"),  # no model: both runs leave purchases unscored alike
    }

    data = suite_config.model_dump(mode="json")
    data["lakehouse"]["root"] = str(tmp_path / "local")
    data["sources"]["online_retail"]["path"] = settings["sources.online_retail.path"]
    data["run"]["process_date"] = settings["run.process_date"]
    data["ml"]["work_dir"] = settings["ml.work_dir"]
    local = validate_config(data)
    run_job("batch_layer", local, spark)

    before = {app["id"] for app in cluster.master_state()["completedapps"]}  # type: ignore[attr-defined]
    overrides = {
        **settings,
        "lakehouse.root": str(tmp_path / "cluster"),
        "spark.master": cluster.cluster.master_url,
        "spark.conf.spark.sql.warehouse.dir": str(tmp_path / "cluster" / "_warehouse"),
        "spark.conf.spark.executor.memory": "1g",
    }
    command = [
        str(Path(sys.executable).parent / "etl-suite"),
        "run",
        "batch_layer",
        "--conf",
        str(PROJECT / "conf" / "test.yaml"),
    ]
    for key, value in overrides.items():
        command += ["--set", f"{key}={value}"]
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert completed.returncode == 0, completed.stderr[-5000:]
    assert "batch_layer succeeded" in completed.stdout

    # It ran on the cluster: the master saw the application come and go, with executors on both workers.
    apps = [app for app in cluster.master_state()["completedapps"] if app["id"] not in before]  # type: ignore[attr-defined]
    assert len(apps) == 1
    assert apps[0]["cores"] == cluster.cluster.workers * cluster.cluster.worker_cores

    for layer, name in RETAIL_TABLES:
        table = f"{layer}/{name}"
        by_local = _comparable(spark.read.format("delta").load(f"{tmp_path}/local/{table}"))
        by_cluster = _comparable(spark.read.format("delta").load(f"{tmp_path}/cluster/{table}"))
        assert by_local.count() > 0, table
        assert_df_equality(by_local, by_cluster, ignore_row_order=True, ignore_nullable=True)
