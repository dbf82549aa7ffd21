"""The Isolation Forest that checks purchases: training, and the step that scores rows with it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from etl_lib.config import AnomalyConfig, MlConfig
from etl_lib.layers import Step
from etl_lib.ml.scoring import anomaly_udf, features_struct
from etl_lib.ml.tracking import ModelRef, champion_if_any

_DRAW_BUCKETS = 1_000_000_007  # a prime: the seeded 64-bit hash modulo it is close to uniform
ANOMALY_COLUMNS = ("anomaly_score", "is_anomaly", "anomaly_model", "anomaly_model_version", "anomaly_unscored_reason")


def pipeline(config: AnomalyConfig) -> Any:
    """Scaling then an Isolation Forest with the paper's settings (trees, sub-sample size)."""
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    forest = IsolationForest(
        n_estimators=config.trees,
        max_samples=config.sample_size,
        contamination=config.contamination,
        random_state=config.random_state,
    )
    return Pipeline([("scale", StandardScaler()), ("forest", forest)])


def purchases(order_lines: DataFrame) -> DataFrame:
    """The lines a purchase anomaly model learns from: sales of products, not cancellations."""
    return order_lines.where(~F.col("is_cancellation") & F.col("is_product"))


def training_sample(rows: DataFrame, fraction: float, seed: int, key: str) -> DataFrame:
    """About ``fraction`` of ``rows``, chosen by a seeded hash of the unique ``key`` and in ``key`` order.

    The same rows in the same order however the table's files and partitions fall: Spark's ``sample`` draws
    per partition, so its rows (and a model fitted on them) would follow the Delta files' layout.

    Args:
        rows: the rows to sample.
        fraction: the share of rows kept, in (0, 1]; 1 or more keeps them all.
        seed: the hash's seed (``ml.anomaly.random_state``): another seed draws other rows.
        key: a column unique to each row (``line_id``).
    """
    if fraction >= 1.0:
        return rows.orderBy(key)
    draw = F.pmod(F.xxhash64(F.lit(seed), F.col(key)), F.lit(_DRAW_BUCKETS))
    return rows.where(draw < F.lit(int(fraction * _DRAW_BUCKETS))).orderBy(key)


def fit(frame: pd.DataFrame, config: AnomalyConfig) -> tuple[Any, dict[str, float]]:
    """Fit the pipeline on ``frame`` (the features); returns it with the metrics worth logging."""
    model = pipeline(config)
    data = frame[config.features].astype("float64")
    model.fit(data)
    scores = -model.score_samples(data)
    flagged = model.predict(data) == -1
    quantiles = np.quantile(scores, [0.5, 0.9, 0.99, 0.999])
    metrics = {
        "training_rows": float(len(data)),
        "anomaly_share": float(flagged.mean()),
        "score_threshold": float(-model.named_steps["forest"].offset_),
        "score_p50": float(quantiles[0]),
        "score_p90": float(quantiles[1]),
        "score_p99": float(quantiles[2]),
        "score_p999": float(quantiles[3]),
        "score_max": float(scores.max()),
    }
    return model, metrics


def with_anomaly_scores(
    model: ModelRef | None, features: list[str], applies: Column | None = None, unavailable: str | None = None
) -> Step:
    """Step adding ``anomaly_score``, ``is_anomaly``, the model name and version, and the unscored reason.

    Args:
        model: the version to score with; None scores nothing (every row gets ``unavailable`` as reason).
        features: the model's feature columns.
        applies: rows the model is meant for (others get the reason "not scored: ..."); all rows when None.
        unavailable: why there is no model, when ``model`` is None.
    """
    udf = anomaly_udf(model.uri if model else None, features, unavailable or "no model to score with")

    def step(frame: DataFrame) -> DataFrame:
        scored = udf(features_struct(features))
        target = applies if applies is not None else F.lit(True)
        columns = {
            "anomaly_score": F.when(target, scored.getField("anomaly_score")),
            "is_anomaly": F.when(target, scored.getField("is_anomaly")),
            "anomaly_model": F.when(target, F.lit(model.name if model else None)).cast("string"),
            "anomaly_model_version": F.when(target, F.lit(model.version if model else None)).cast("string"),
            "anomaly_unscored_reason": F.when(target, scored.getField("unscored_reason")).otherwise(
                F.lit("not scored: the anomaly model applies to purchases only")
            ),
        }
        return frame.withColumns(columns)

    return step


def champion_scoring(ml: MlConfig, applies: Column, *, enabled: bool, resolve: bool = True) -> Step:
    """The step scoring the rows ``applies`` selects with the anomaly model's champion, or no step.

    The batch layer (order lines) and the speed layer (purchase events) both score with it; the champion is looked
    up once, here, not once a batch.

    Args:
        ml: the ``ml`` section (the model's name, its features, where MLflow keeps it).
        applies: the rows the model is meant for; the others get the reason "not scored: ...".
        enabled: whether this layer scores at all (``ml.anomaly.in_batch_layer`` or ``in_speed_layer``);
            when false the step returns its frame as it is.
        resolve: false to look up no model: the step only shapes the columns (for a table's schema).
    """
    if not enabled:
        return lambda frame: frame
    settings = ml.anomaly
    model, reason = champion_if_any(ml, settings.model_name) if resolve else (None, "schema only")
    return with_anomaly_scores(model, settings.features, applies=applies, unavailable=reason)
