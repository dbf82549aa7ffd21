"""`make demo`'s pipeline on a small slice of the bundled data, and its report in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, validate_config
from etl_lib.demo.run import PHASES, STEPS, run_demo

# `make demo` runs on the primary line (the default of `make setup`).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
SECTIONS = ("steps", "summary", "reconciliation", "quality", "anomalies", "churn", "revenue", "streaming", "lineage")


@pytest.fixture(scope="module")
def demo(spark: SparkSession, suite_config: SuiteConfig, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo on every 40th line of the extract (the whole year, quickly) and 4,000 replayed events."""
    folder = tmp_path_factory.mktemp("demo")
    whole = pq.read_table(PROJECT / "data" / "online_retail" / "online_retail.parquet")
    (folder / "extract").mkdir()
    pq.write_table(whole.take(list(range(0, whole.num_rows, 40))), folder / "extract" / "part.parquet")
    data = suite_config.model_dump(mode="json")
    data["lakehouse"]["root"] = str(folder / "lake")
    data["sources"]["online_retail"]["path"] = str(folder / "extract")
    data["speed"]["files"]["path"] = str(folder / "landing")
    data["ml"]["work_dir"] = str(folder / "mlflow")
    config = validate_config(data)
    said: list[str] = []
    report = folder / "report.html"
    run = run_demo(config, events=4000, report=report, say=said.append, spark=spark)
    return {"config": config, "run": run, "said": said, "report": report, "folder": folder}


def test_every_step_runs_and_says_what_it_wrote(demo: dict[str, Any]) -> None:
    run, said = demo["run"], demo["said"]
    assert [step.name for step in run.steps] == list(STEPS)
    done = [line for line in said if re.match(r"^\[\d/7\] \S+ +[\d,]+ rows written +[\d.]+ s", line)]
    # Steps of a phase run side by side and say so as they finish.
    assert sorted(line.split()[1] for line in done) == sorted(STEPS)
    written = {step.name: step.rows_written for step in run.steps}
    assert written["produce"] == 4000
    assert all(written[name] > 0 for name in STEPS if name != "train_models")  # models go to MLflow
    assert run.metrics("reconcile")["verdict"] == "consistent"


def test_the_plan_runs_each_step_after_what_it_reads() -> None:
    where = {step: (index, lane) for index, lanes in enumerate(PHASES) for lane in lanes for step in lane}
    for step, needs in {
        "speed_layer": ["produce"],
        "train_models": ["batch_layer"],
        "score": ["train_models", "batch_layer"],
        "reconcile": ["speed_layer", "batch_layer"],
        "publish_products": ["score", "reconcile"],
    }.items():
        for need in needs:
            (step_phase, step_lane), (need_phase, need_lane) = where[step], where[need]
            earlier_in_lane = step_lane == need_lane and step_lane.index(need) < step_lane.index(step)
            assert need_phase < step_phase or earlier_in_lane, (step, need)
    # Training promotes its models as it ends: nothing that resolves a champion when it starts (the batch
    # layer's silver, the speed layer) may run beside it (that scoring comes after it is checked above).
    training_phase = where["train_models"][0]
    for resolver in ("batch_layer", "speed_layer"):
        assert where[resolver][0] < training_phase, resolver


def test_the_models_trained_are_promoted_before_scoring(demo: dict[str, Any]) -> None:
    run = demo["run"]
    trained = run.metrics("train_models")
    scored = run.metrics("score")
    assert trained["anomaly_model_version"] == "1"
    assert scored["anomalies"] > 0  # the new champion scored the purchases


def test_the_summary_lists_tables_scores_models_and_lineage(demo: dict[str, Any]) -> None:
    text = "\n".join(demo["said"])
    for expected in (
        "bronze/online_retail",
        "silver/order_lines",
        "gold/churn_scores",
        "mesh/data_products",
        "anomalies: ",
        "churn risk: Low ",
        "churn ROC-AUC (cross-validated): Online Retail ",
        "reconcile: consistent: ",
        "lineage of gold/customer_features:",
        "<- silver/order_lines",
    ):
        assert expected in text, expected
    assert re.search(r"gold/daily_revenue +[\d,]+ rows +quality 1\.00", text)
    # The demo's own time, and its steps' (some run side by side): it took at least its longest step.
    took = re.search(r"^7 steps in (\d+) s \((\d+) s of steps, some side by side\)$", text, re.MULTILINE)
    assert took, text
    longest = max(step.seconds for step in demo["run"].steps)
    assert int(took[1]) >= int(longest)
    assert int(took[2]) == round(sum(s.seconds for s in demo["run"].steps))


def test_running_it_again_replays_nothing_twice(spark: SparkSession, demo: dict[str, Any]) -> None:
    again = run_demo(demo["config"], events=4000, report=demo["folder"] / "again.html", say=lambda _: None, spark=spark)
    written = {step.name: step.rows_written for step in again.steps}
    assert (written["produce"], written["speed_layer"]) == (0, 0)
    assert again.metrics("reconcile")["verdict"] == "consistent"


def test_the_report_renders_in_headless_chromium(demo: dict[str, Any], tmp_path: Path) -> None:
    assert shutil.which("chromium"), "Chromium is missing: make setup installs it (Debian package chromium)"
    report: Path = demo["report"]
    screenshot = tmp_path / "report.png"
    common = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = subprocess.run(
        [
            *common,
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={screenshot}",
            "--window-size=1280,6000",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in shot.stderr.splitlines() if ":CONSOLE" in line or "Failed to load" in line]
    assert console == []
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1280, 6000)
    dom = subprocess.run(
        [*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for section in SECTIONS:
        assert f'id="{section}"' in dom, section
    # Every plot is there: one SVG per figure section, none empty.
    assert dom.count("<svg") == 6
    assert "nothing recorded yet" not in dom
