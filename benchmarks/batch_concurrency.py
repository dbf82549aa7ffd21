"""The batch layer's independent tables built side by side, against one after another.

The batch layer runs its tasks as a graph: tables that do not depend on each other (the two dimensions,
the two gold tables, the quality checks of each) are built at the same time, up to
``batch.max_parallel_tables``. Here the same run (Online Retail, the lines of every ``n``-th day, as
of 2011-12-10) is timed with 1 and with 2 tables at once. The two are run in turns, so that a noisy
neighbour slows both alike, and their gold tables are checked to be equal to each other and to a whole run's.

Bronze and silver come before every independent table and are the same work both ways, so they are built
once: each attempt starts from a copy of a lakehouse where they are built and the tables after them are
not (as after a first run that stopped at silver). The batch layer then finds nothing new for bronze and
silver, and builds the four tables after them: what is timed is the whole job, the part that differs
between the two ways undiluted. The whole run that prepares that lakehouse builds the same four tables in
the same session, and is the warm-up (``warmup`` adds more, of each way).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.harness import every_nth_day, in_turns, record, target

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
#: The lines of every n-th day: the graph and its commits, not the data, are what is compared.
EVERY = {"tiny": 200, "full": 16}
WAYS = {"one table at a time": 1, "two tables at once": 2}
#: The tables built after silver, and their streaming checkpoints: removed from the prepared lakehouse.
AFTER_SILVER = ("silver/dim_products", "silver/dim_customers", "gold/customer_features", "gold/daily_revenue")
CHECKPOINTS = ("_checkpoints/silver/dim_products", "_checkpoints/silver/dim_customers")


def run(
    size: str, repeat: int = 5, results_dir: Path | None = None, spark: Any = None, warmup: int = 0
) -> dict[str, Any]:
    """Measure ``size`` (tiny|full); ``spark`` reuses a session (it is then left running)."""
    import pyarrow.parquet as pq

    from etl_lib.config import load_config, validate_config
    from etl_lib.io import lakehouse
    from etl_lib.runtime.runner import run_job
    from etl_lib.runtime.session import build_session

    config = load_config(PROJECT / "conf" / "local.yaml", ["spark.log_level=ERROR"])
    own_session = spark is None
    spark = spark or build_session(config.spark)
    counts: dict[str, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as folder:
            whole = pq.read_table(DATA)
            sample = every_nth_day(whole, EVERY[size])
            (Path(folder) / "extract").mkdir()
            pq.write_table(sample, Path(folder) / "extract" / "part.parquet")

            def configured(root: Path, way: str) -> Any:
                data = config.model_dump(mode="json")
                data["lakehouse"]["root"] = str(root)
                data["sources"]["online_retail"]["path"] = str(Path(folder) / "extract")
                data["run"]["process_date"] = "2011-12-10"
                data["ml"]["work_dir"] = str(Path(folder) / "mlflow")  # no model: purchases stay unscored
                data["batch"]["max_parallel_tables"] = WAYS[way]
                return validate_config(data)

            def gold_lines(setup: Any) -> int:
                return lakehouse.read(spark, setup.lakehouse.table_path("gold", "customer_features")).count()

            # A whole run, then the tables after silver taken away (and where their streams had read to).
            prepared = Path(folder) / "prepared"
            whole_run = configured(prepared, "two tables at once")
            run_job("batch_layer", whole_run, spark)
            counts["whole run"] = gold_lines(whole_run)
            for relative in (*AFTER_SILVER, *CHECKPOINTS):
                shutil.rmtree(prepared / relative)

            def attempt_of(way: str, attempt: int) -> float:
                root = Path(folder) / f"lake-{WAYS[way]}-{attempt + warmup}"
                shutil.copytree(prepared, root)  # not timed
                setup = configured(root, way)
                started = time.perf_counter()
                run_job("batch_layer", setup, spark)  # raises if any task fails
                seconds = time.perf_counter() - started
                counts[way] = gold_lines(setup)
                shutil.rmtree(root)
                return seconds

            timings = in_turns({way: partial(attempt_of, way) for way in WAYS}, repeat, warmup)
    finally:
        if own_session:
            spark.stop()
    if len(set(counts.values())) != 1:
        raise AssertionError(f"the two ways and a whole run built different gold tables: {counts}")
    serial, parallel = (timings[way]["median"] for way in WAYS)
    ratio = serial / parallel
    result_data = {
        "summary": (
            f"the batch layer on {sample.num_rows:,} lines (those of every {EVERY[size]}th day), each run on a "
            "copy of a lakehouse where bronze and silver are built and the four tables after them are not; "
            f"median of {repeat} after the whole run that prepared it"
            + (f" and {warmup} warm-up of each way" if warmup else "")
            + " (the warm-up), the two ways in turns"
        ),
        "columns": ["seconds", "spread", "speedup"],
        "rows": [
            {
                "case": way,
                "seconds": round(timing["median"], 2),
                "spread": timing["spread"],
                "speedup": round(serial / timing["median"], 2),
            }
            for way, timing in timings.items()
        ],
        "runs": timings,
        "targets": [target("independent tables at once against one after another", "reported", ratio, True)],
    }
    if results_dir is not None:
        record("batch_concurrency", f"python -m benchmarks batch_concurrency --size {size}", result_data, results_dir)
    return result_data
