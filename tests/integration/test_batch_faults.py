"""The batch layer under faults: a second run of the same date refused while one runs; a run killed mid-way,
then run again, leaves exactly the tables a clean run leaves."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.io import lakehouse
from etl_lib.runtime.runner import run_job
from tests.retail import RETAIL_TABLES

if TYPE_CHECKING:
    from tests.integration.conftest import SuiteRun

PROJECT = Path(__file__).resolve().parents[2]


def _comparable(frame: DataFrame) -> DataFrame:
    # What a run stamps on its rows (its id, when it ran) differs between any two runs.
    return frame.drop(*[name for name in frame.columns if name.startswith("_")])


# The lock's Delta primitive (idempotent commits, racing claims) is tested on both lines in spark/test_run_lock.py;
# this end-to-end run of processes, on the primary line.
@pytest.mark.primary_line
@pytest.mark.slow
def test_a_second_run_is_refused_and_a_killed_run_rerun_equals_a_clean_run(
    spark: SparkSession,
    suite_config: SuiteConfig,
    tmp_path: Path,
    run_statuses: Callable[[SparkSession, str], list[list[str]]],
    suite_run: type[SuiteRun],
    caplog: pytest.LogCaptureFixture,
) -> None:
    whole = pq.read_table(PROJECT / "data" / "online_retail" / "online_retail.parquet")
    (tmp_path / "extract").mkdir()
    pq.write_table(whole.take(list(range(0, whole.num_rows, 40))), tmp_path / "extract" / "part.parquet")
    extract_rows = (whole.num_rows + 39) // 40
    settings = {
        "sources.online_retail.path": str(tmp_path / "extract"),
        "run.process_date": "2011-12-10",
        "ml.work_dir": str(tmp_path / "mlflow"),  # no model: every run leaves purchases unscored alike
    }
    data = suite_config.model_dump(mode="json")
    data["lakehouse"]["root"] = str(tmp_path / "clean")
    data["sources"]["online_retail"]["path"] = settings["sources.online_retail.path"]
    data["run"]["process_date"] = settings["run.process_date"]
    data["ml"]["work_dir"] = settings["ml.work_dir"]
    run_job("batch_layer", validate_config(data), spark)

    root = tmp_path / "faults"
    first = suite_run("batch_layer", root, settings)
    first.wait_for("task bronze/online_retail done", timeout=300)
    # Frozen mid-way, the first run still holds the lock: a second run of the same date is refused.
    first.signal(signal.SIGSTOP)
    second = suite_run("batch_layer", root, settings)
    assert second.finish() == 75, second.output[-5000:]
    refusal = second.output.strip().splitlines()[-1]
    assert refusal.startswith("error: batch is already running: run "), refusal
    assert " of batch_layer (pid " in refusal
    assert f"(pid {first.pid} on " in refusal
    assert "this run did not start its work" in refusal
    assert "Traceback" not in second.output

    # Killed there: bronze landed, silver, the dimensions and gold not yet built.
    first.signal(signal.SIGKILL)
    first.finish()
    lake = suite_config.lakehouse.model_copy(update={"root": str(root)})
    assert lakehouse.read(spark, lake.table_path("bronze", "online_retail")).count() == extract_rows

    # Run again here, in this process: what it recovers from is on disk (the tables, the lock), and a process of its
    # own would add only a third start of a JVM.
    data["lakehouse"]["root"] = str(root)
    with caplog.at_level(logging.WARNING, logger="etl_lib.runtime.runner"):
        run_job("batch_layer", validate_config(data), spark)
    assert "no longer runs; this run takes over" in caplog.text

    for layer, name in RETAIL_TABLES:
        clean = _comparable(spark.read.format("delta").load(f"{tmp_path}/clean/{layer}/{name}"))
        recovered = _comparable(lakehouse.read(spark, lake.table_path(layer, name)))
        assert_df_equality(clean, recovered, ignore_row_order=True, ignore_nullable=True)
    lines = lakehouse.read(spark, lake.table_path("silver", "order_lines"))
    assert lines.count() == lines.select("line_id").distinct().count() > 0

    # The killed run is closed as abandoned; the refused one failed; the rerun succeeded.
    assert run_statuses(spark, lake.table_path("audit", "etl_runs")) == [
        ["abandoned", "running"],
        ["failed", "running"],
        ["running", "succeeded"],
    ]
