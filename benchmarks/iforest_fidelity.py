"""Fidelity of the suite's Isolation Forest to the published method (Liu, Ting, Zhou, ICDM 2008, Table 3).

Each outlier benchmark set is scored through the suite's own path: the anomaly pipeline (scaling, then an
Isolation Forest with the paper's 100 trees and sub-samples of 256), saved as an MLflow model, loaded by
the pandas UDF inside Spark, scoring every row. AUC is averaged over 10 random seeds, as the paper
averages 10 trials, and printed next to the paper's value.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import record

PROJECT = Path(__file__).resolve().parents[1]
SETS = PROJECT / "data" / "outlier_benchmarks"
PAPER = {
    "4_breastw": 0.99,
    "29_Pima": 0.67,
    "32_shuttle": 1.00,
    "23_mammography": 0.86,
    "2_annthyroid": 0.82,
    "18_Ionosphere": 0.85,
}
SIZES = {"tiny": (["4_breastw", "29_Pima"], 2), "full": (list(PAPER), 10)}


def run(size: str, repeat: int = 1, results_dir: Path | None = None, spark: Any = None) -> dict[str, Any]:
    """Measure ``size`` (tiny: two sets, two seeds); ``spark`` reuses a session (it is then left running)."""
    import mlflow.sklearn
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from etl_lib.config import AnomalyConfig, load_config
    from etl_lib.ml.anomaly import pipeline
    from etl_lib.ml.scoring import anomaly_udf, features_struct
    from etl_lib.runtime.session import build_session

    names, seeds = SIZES[size]
    config = load_config(
        PROJECT / "conf" / "local.yaml", ["spark.log_level=ERROR", "spark.conf.spark.ui.showConsoleProgress=false"]
    )
    own_session = spark is None
    spark = spark or build_session(config.spark)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-iforest-") as folder:
            for name in names:
                with np.load(SETS / f"{name}.npz", allow_pickle=False) as archive:
                    features, labels = archive["X"].astype("float64"), archive["y"].astype(int)
                columns = [f"x{i}" for i in range(features.shape[1])]
                frame = spark.createDataFrame(pd.DataFrame(features, columns=columns).assign(label=labels)).persist()
                aucs = []
                for seed in range(seeds):
                    settings = AnomalyConfig(
                        features=columns, trees=100, sample_size=256, contamination=0.1, random_state=seed
                    )
                    model = pipeline(settings).fit(pd.DataFrame(features, columns=columns))
                    location = Path(folder) / f"{name}-{seed}"
                    mlflow.sklearn.save_model(
                        model, str(location), skops_trusted_types=["sklearn.tree._tree.Tree", "numpy.dtype"]
                    )
                    scored = frame.select(
                        "label", anomaly_udf(location.as_uri(), columns)(features_struct(columns)).alias("s")
                    )
                    result = scored.select("label", "s.anomaly_score").toPandas()
                    aucs.append(roc_auc_score(result["label"], result["anomaly_score"]))
                frame.unpersist()
                auc = float(np.mean(aucs))
                rows.append(
                    {
                        "case": f"{name} ({features.shape[0]:,} x {features.shape[1]})",
                        "suite_auc": round(auc, 3),
                        "paper_auc": PAPER[name],
                        "difference": round(auc - PAPER[name], 3),
                        "within_0.03": abs(auc - PAPER[name]) <= 0.03,
                        "seeds": seeds,
                    }
                )
    finally:
        if own_session:
            spark.stop()
    result = {
        "summary": "AUC of the suite's scoring path (MLflow model, pandas UDF in Spark), mean over seeds, vs the paper",
        "columns": ["suite_auc", "paper_auc", "difference", "within_0.03", "seeds"],
        "rows": rows,
    }
    if results_dir is not None:
        record("iforest_fidelity", f"python -m benchmarks iforest_fidelity --size {size}", result, results_dir)
    return result
