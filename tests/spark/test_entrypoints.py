"""`etl-suite run JOB` and `spark-submit jobs/JOB.py` are the same job: both run here as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
BIN = Path(sys.executable).parent
# What make setup writes for spark-submit, as docs/running.md tells a user to pass it.
SUBMIT = [str(BIN / "spark-submit"), "--properties-file", str(PROJECT / ".cache" / "spark-submit.conf")]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("landing")
    pq.write_table(pq.read_table(DATA).slice(0, 2000), folder / "extract.parquet")
    return folder


def run(command: list[str], root: Path, landing: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    arguments = [
        "--conf",
        str(PROJECT / "conf" / "test.yaml"),
        "--set",
        f"lakehouse.root={root}",
        "--set",
        f"sources.online_retail.path={landing}",
        "--set",
        f"spark.conf.spark.sql.warehouse.dir={root}/_warehouse",
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.run(
        [*command, *arguments], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False
    )


@pytest.mark.slow
def test_cli_spark_submit_and_glue_arguments_write_the_same_table(
    spark: SparkSession, tmp_path: Path, landing: Path
) -> None:
    by_cli = run([str(BIN / "etl-suite"), "run", "ingest_files"], tmp_path / "a", landing, tmp_path)
    assert by_cli.returncode == 0, by_cli.stderr
    by_submit = run([*SUBMIT, str(PROJECT / "jobs" / "ingest_files.py")], tmp_path / "b", landing, tmp_path)
    assert by_submit.returncode == 0, by_submit.stderr

    # As AWS Glue starts a script: its own arguments beside ours, ours under Glue-safe names.
    overrides = {
        "lakehouse.root": str(tmp_path / "c"),
        "sources.online_retail.path": str(landing),
        "spark.conf.spark.sql.warehouse.dir": f"{tmp_path / 'c'}/_warehouse",
    }
    by_glue = subprocess.run(
        [
            *SUBMIT,
            str(PROJECT / "jobs" / "ingest_files.py"),
            "--JOB_NAME",
            "etl-suite-ingest_files",
            "--JOB_ID",
            "j_1",
            "--JOB_RUN_ID",
            "jr_1",
            "--job-bookmark-option",
            "job-bookmark-disable",
            "--TempDir",
            str(tmp_path / "glue-tmp"),
            "--suite-conf",
            str(PROJECT / "conf" / "test.yaml"),
            "--suite-overrides",
            json.dumps(overrides),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable},
    )
    assert by_glue.returncode == 0, by_glue.stderr

    runs = ((by_cli, tmp_path / "a"), (by_submit, tmp_path / "b"), (by_glue, tmp_path / "c"))
    for completed, root in runs:
        assert "ingest_files succeeded" in completed.stdout
        assert f"bronze/online_retail       2,000 rows  version    0  {root}/bronze/online_retail" in completed.stdout

    def landed(root: Path) -> object:
        return spark.read.format("delta").load(str(root / "bronze" / "online_retail")).drop("_run_id", "_ingested_at")

    assert_df_equality(landed(tmp_path / "a"), landed(tmp_path / "b"), ignore_row_order=True)
    assert_df_equality(landed(tmp_path / "a"), landed(tmp_path / "c"), ignore_row_order=True)


def test_spark_submit_without_the_suite_s_jars_says_how_to_give_them(
    tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing of the installation's own configuration: only what the command line gives spark-submit.
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path / "no-conf"))
    bare = run(
        [str(BIN / "spark-submit"), str(PROJECT / "jobs" / "ingest_files.py")], tmp_path / "lake", landing, tmp_path
    )
    assert bare.returncode == 1
    # spark-submit runs Python with its standard error joined to its output.
    assert (
        "error: the Spark driver has no Delta classes: spark-submit starts it before the suite can add its jars. "
        "Give spark-submit the properties file make setup wrote: "
        "spark-submit --properties-file .cache/spark-submit.conf jobs/JOB.py ... (or run etl-suite run JOB)"
    ) in bare.stdout.splitlines()
    assert not (tmp_path / "lake" / "bronze").exists()


def test_a_failure_inside_spark_is_explained_in_one_line_not_only_by_a_java_trace(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "extract.parquet").write_bytes(b"this is not parquet at all")
    failed = run([str(BIN / "etl-suite"), "run", "ingest_files"], tmp_path / "lake", broken, tmp_path)
    assert failed.returncode == 1
    # The trace is there for whoever debugs; the last line names the Java exception that says what happened,
    # not "An error occurred while calling o123.load".
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: java.lang.RuntimeException: ")
    assert f"{broken / 'extract.parquet'} is not a Parquet file" in last
    assert "An error occurred while calling" not in last
