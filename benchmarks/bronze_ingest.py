"""Landing the Online Retail extract in bronze: the suite's Spark job against delta-rs in one process.

Baseline: ``deltalake.write_deltalake`` of the same Parquet files, in this process (what a small team
might write instead of Spark). Suite: ``ingest_files`` on an already running local session (JVM start
is reported apart). The claim is the ratio suite/baseline at each size; it shows where Spark's fixed
costs stop dominating.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import measure, record

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
SIZES = {"tiny": [0.01], "full": [1, 4]}


def make_landing(folder: Path, copies: float) -> int:
    """A landing folder holding the extract ``copies`` times (a fraction takes the first rows)."""
    folder.mkdir(parents=True)
    table = pq.read_table(DATA)
    if copies < 1:
        table = table.slice(0, int(table.num_rows * copies))
        pq.write_table(table, folder / "part-0.parquet")
        return table.num_rows
    for index in range(int(copies)):
        pq.write_table(table, folder / f"part-{index}.parquet")
    return table.num_rows * int(copies)


def run(size: str, repeat: int = 5, results_dir: Path | None = None, spark: Any = None) -> dict[str, Any]:
    """Measure ``size`` (tiny|full); ``spark`` reuses a session (it is then left running)."""
    from deltalake import DeltaTable, write_deltalake

    from etl_lib.config import SuiteConfig, load_config
    from etl_lib.core.run import RunContext
    from etl_lib.runtime.runner import run_job
    from etl_lib.runtime.session import build_session

    work = Path(tempfile.mkdtemp(prefix="bench-bronze-"))

    def with_paths(config: SuiteConfig, landing: Path, lake: Path) -> SuiteConfig:
        source = config.sources["online_retail"].model_copy(update={"path": str(landing)})
        lakehouse = config.lakehouse.model_copy(update={"root": str(lake)})
        return config.model_copy(update={"sources": {"online_retail": source}, "lakehouse": lakehouse})

    def suite(spark: Any, config: SuiteConfig, landing: Path, rows: int, attempt: int) -> None:
        lake = work / f"{landing.name}-lake-{attempt}"
        context = RunContext.new("ingest_files", clock=lambda: dt.datetime.now(dt.UTC))
        result = run_job("ingest_files", with_paths(config, landing, lake), spark, context)
        if result.writes[0].rows_written != rows:
            raise AssertionError(f"landed {result.writes[0].rows_written} rows, expected {rows}")

    def baseline(landing: Path, attempt: int) -> None:
        frames = [pq.read_table(path) for path in sorted(landing.glob("*.parquet"))]
        write_deltalake(str(work / f"{landing.name}-rs-{attempt}"), pa.concat_tables(frames))

    rows_out = []
    try:
        config = load_config(PROJECT / "conf" / "local.yaml", [f"lakehouse.root={work}/lake", "spark.log_level=ERROR"])
        started = time.perf_counter()
        own_session = spark is None
        spark = spark or build_session(config.spark)
        session_seconds = time.perf_counter() - started
        for copies in SIZES[size]:
            landing = work / f"landing-{copies}"
            rows = make_landing(landing, copies)
            suite_t = measure(lambda n, landing=landing, rows=rows: suite(spark, config, landing, rows, n), repeat)
            baseline_t = measure(lambda n, landing=landing: baseline(landing, n), repeat)
            # The same work both ways: delta-rs's last table holds every line the suite landed.
            written = DeltaTable(str(work / f"{landing.name}-rs-{repeat - 1}")).to_pyarrow_dataset().count_rows()
            if written != rows:
                raise AssertionError(f"delta-rs wrote {written} rows, expected {rows}")
            rows_out.append(
                {
                    "case": f"{rows:,} rows",
                    "suite_s": round(suite_t["median"], 3),
                    "suite_spread": suite_t["spread"],
                    "deltalake_s": round(baseline_t["median"], 3),
                    "deltalake_spread": baseline_t["spread"],
                    "suite/deltalake": round(suite_t["median"] / baseline_t["median"], 2),
                }
            )
        if own_session:
            spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "summary": (
            f"Spark session start {session_seconds:.1f}s (not in the ratios); median of {repeat} runs per case "
            "after a warm-up"
        ),
        "columns": ["suite_s", "suite_spread", "deltalake_s", "deltalake_spread", "suite/deltalake"],
        "rows": rows_out,
    }
    if results_dir is not None:
        record("bronze_ingest", f"python -m benchmarks bronze_ingest --size {size}", result, results_dir)
    return result
