"""Scoring throughput: the Isolation Forest through the suite's pandas UDF against single-process scikit-learn.

The same rows (the Online Retail purchase features, repeated up to the size) are scored by the same
fitted pipeline: once in one Python process by ``score_samples``, once in Spark by the UDF, which loads
the model once per worker and scores Arrow batches in parallel. The claim is rows per second of each.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import median, record

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
SIZES = {"tiny": 20_000, "full": 2_000_000}
FEATURES = ["quantity", "unit_price", "amount"]


def run(size: str, repeat: int = 3, results_dir: Path | None = None, spark: Any = None) -> dict[str, Any]:
    """Measure ``size`` rows; ``spark`` reuses a session (it is then left running)."""
    import mlflow.sklearn
    import pandas as pd
    import pyarrow.parquet as pq

    from etl_lib.config import AnomalyConfig, load_config
    from etl_lib.ml.anomaly import pipeline
    from etl_lib.ml.scoring import anomaly_udf, features_struct
    from etl_lib.platform.session import build_session

    rows = SIZES[size]
    config = load_config(
        PROJECT / "conf" / "local.yaml", ["spark.log_level=ERROR", "spark.conf.spark.ui.showConsoleProgress=false"]
    )
    own_session = spark is None
    spark = spark or build_session(config.spark)
    extract = pq.read_table(DATA, columns=["Quantity", "UnitPrice"]).to_pandas()
    extract.columns = ["quantity", "unit_price"]
    extract["amount"] = extract["quantity"] * extract["unit_price"]
    data = pd.concat([extract] * (rows // len(extract) + 1), ignore_index=True).iloc[:rows].astype("float64")
    model = pipeline(AnomalyConfig(features=FEATURES)).fit(
        data.sample(50_000, random_state=0, replace=len(data) < 50_000)
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scoring-") as folder:
            location = Path(folder) / "model"
            mlflow.sklearn.save_model(
                model, str(location), skops_trusted_types=["sklearn.tree._tree.Tree", "numpy.dtype"]
            )
            frame = spark.createDataFrame(data).repartition(spark.sparkContext.defaultParallelism * 2).persist()
            frame.count()
            udf = anomaly_udf(location.as_uri(), FEATURES)

            def in_spark() -> float:
                started = time.perf_counter()
                frame.select(udf(features_struct(FEATURES)).alias("s")).agg({"s.anomaly_score": "sum"}).collect()
                return time.perf_counter() - started

            def one_process() -> float:
                started = time.perf_counter()
                model.score_samples(data)
                return time.perf_counter() - started

            in_spark()  # the workers load the model once
            spark_s = median([in_spark() for _ in range(repeat)])
            local_s = median([one_process() for _ in range(repeat)])
            frame.unpersist()
    finally:
        if own_session:
            spark.stop()
    result = {
        "summary": f"{rows:,} rows, 3 features, median of {repeat}; the UDF runs on every core Spark has",
        "columns": ["seconds", "rows_per_second", "speedup"],
        "rows": [
            {
                "case": "single-process scikit-learn",
                "seconds": round(local_s, 2),
                "rows_per_second": round(rows / local_s),
                "speedup": 1.0,
            },
            {
                "case": "pandas UDF in Spark",
                "seconds": round(spark_s, 2),
                "rows_per_second": round(rows / spark_s),
                "speedup": round(local_s / spark_s, 2),
            },
        ],
    }
    if results_dir is not None:
        record("scoring_throughput", f"python -m benchmarks scoring_throughput --size {size}", result, results_dir)
    return result
