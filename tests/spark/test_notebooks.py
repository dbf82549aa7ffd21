"""Every Databricks notebook runs locally, with the test session standing in for the cluster's `spark`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl_lib.core.run import JobResult
from etl_lib.io import lakehouse
from tests.notebooks import DbUtils

# A test of the suite's own logic, on the primary line: the notebooks call the same jobs the other tests run on both
# lines (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
#: The order the notebooks run in, each on what the ones before it wrote (others run after these, by name).
ORDER = (
    "batch_layer",
    "ingest_files",
    "quality_replay",
    "speed_layer",
    "train_models",
    "score",
    "reconcile",
    "publish_products",
)
#: Rows notebooks land from the landing folders: an extract of every 100th line, and the events of 100 lines (a page
#: view and a purchase each).
LANDED = {
    "batch_layer": {"bronze/online_retail": 5_420},
    "speed_layer": {"bronze/events": 200, "silver/events": 200},
}
#: Notebooks whose job needs a service, each run where that service is started.
ELSEWHERE = {"dispatch_fulfillment": "Step Functions: integration/test_fulfillment, on the local AWS endpoint"}
NOTEBOOKS = sorted(
    (PROJECT / "notebooks").glob("*.py"),
    key=lambda path: (ORDER.index(path.stem) if path.stem in ORDER else len(ORDER), path.stem),
)


def test_there_is_a_notebook_per_job() -> None:
    from etl_lib.runtime.registry import JOBS

    assert sorted(path.stem for path in NOTEBOOKS) == sorted(JOBS)


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small landing folders (an extract, events), so that each notebook runs its job on real rows quickly."""
    import pyarrow.parquet as pq

    from etl_lib.producer.events import encode, retail_events
    from etl_lib.producer.sinks import FilesSink

    folder = tmp_path_factory.mktemp("landing")
    whole = pq.read_table(PROJECT / "data" / "online_retail" / "online_retail.parquet")
    # Every 100th line: a small extract spanning the whole year, so that churn has a history to learn from.
    pq.write_table(whole.take(list(range(0, whole.num_rows, 100))), folder / "extract.parquet")
    table = whole.slice(0, 2000)
    events = tmp_path_factory.mktemp("events")
    FilesSink(str(events)).send([(e["customer_id"], encode(e)) for e in retail_events(table.slice(0, 100))])
    return {"extract": folder, "events": events}


@pytest.fixture(scope="module")
def shared_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One lakehouse for the notebooks, which run in :data:`ORDER` (each on the tables of those before it)."""
    return tmp_path_factory.mktemp("notebook-lake")


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.stem not in ELSEWHERE], ids=lambda path: path.stem)
def test_notebook_runs_with_a_local_session(
    notebook: Path,
    spark: SparkSession,
    shared_lake: Path,
    landing: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = notebook.read_text()
    assert source.startswith("# Databricks notebook source\n")
    assert "# COMMAND ----------" in source
    assert "pip install" not in source

    dbutils = DbUtils(
        {
            "conf": str(PROJECT / "conf" / "test.yaml"),
            "overrides": "\n".join(
                [
                    f"lakehouse.root={shared_lake}",
                    f"ml.work_dir={shared_lake / '_mlflow'}",
                    "run.table=silver/order_lines",
                    f"sources.online_retail.path={landing['extract']}",
                    f"speed.files.path={landing['events']}",
                    "run.available_now=true",
                ]
            ),
        }
    )
    namespace = {"spark": spark, "dbutils": dbutils, "__name__": "__main__"}
    exec(compile(source, str(notebook), "exec"), namespace)  # noqa: S102

    assert dbutils.widgets.declared == ["conf", "overrides"]
    result = namespace["result"]
    assert isinstance(result, JobResult)
    assert (result.job, result.status) == (notebook.stem, "succeeded")
    assert result.summary() in capsys.readouterr().out
    # The job ran on what the widgets gave it: the lakehouse named there, the landing folders' rows.
    for write in result.writes:
        assert Path(write.path).is_relative_to(shared_lake), write.path
        if write.version is not None:
            assert lakehouse.current_version(spark, write.path) >= write.version
    landed = {f"{w.layer}/{w.table}": w.rows_written for w in result.writes}
    expected = LANDED.get(notebook.stem, {})
    assert {name: landed.get(name) for name in expected} == expected
