"""Scoring inside Spark with pandas UDFs that load the model once per Python worker.

The UDF takes the features as one struct column and returns a struct: the score(s) and, for a row that
could not be scored, the reason. A model that cannot be loaded, or a row with a missing feature, never
gets a made-up score (the seed returned 0.5): it is marked unscored, and jobs count those rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.pandas.functions import pandas_udf

_MODELS: dict[str, tuple[Any, str | None]] = {}
_LOCK = threading.Lock()


def load_model(uri: str) -> tuple[Any, str | None]:
    """The scikit-learn model at ``uri`` (cached for the life of the worker), or the reason it failed."""
    with _LOCK:
        if uri not in _MODELS:
            try:
                import mlflow.sklearn

                _MODELS[uri] = (mlflow.sklearn.load_model(uri), None)
            except Exception as error:  # noqa: BLE001 - turned into a reason on every row, and reported
                _MODELS[uri] = (None, f"model could not be loaded from {uri}: {type(error).__name__}: {error}")
        return _MODELS[uri]


def _offset(model: Any) -> float:
    """The Isolation Forest's decision offset, of the forest itself or of the last step of a pipeline."""
    estimator = model.steps[-1][1] if hasattr(model, "steps") else model
    return float(estimator.offset_)


def _missing(frame: pd.DataFrame, features: list[str]) -> pd.Series:
    reasons = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for feature in features:
        absent = frame[feature].isna()
        reasons[absent & reasons.isna()] = f"missing feature {feature}"
    return reasons


def _unscored(scores: dict[str, str], reason: str) -> Callable[[Column], Column]:
    """The UDFs' result when there is no model: no scores, ``reason`` on every row, no Python worker.

    Every field is nullable, as the UDFs' are: a table first written without a model must take scored
    rows (whose reason is null) later.
    """

    def column(features_struct: Column) -> Column:
        return F.struct(
            *[F.lit(None).cast(type_name).alias(name) for name, type_name in scores.items()],
            F.when(features_struct.isNotNull(), F.lit(reason)).alias("unscored_reason"),
        )

    return column


def anomaly_udf(uri: str | None, features: list[str], unavailable: str | None = None) -> Callable[[Column], Column]:
    """A pandas UDF giving ``struct(anomaly_score, is_anomaly, unscored_reason)`` for a struct of ``features``.

    ``anomaly_score`` is the Isolation Forest paper's score (about 0.5 for ordinary rows, towards 1 for
    anomalies): the negated ``score_samples`` of the pipeline. ``is_anomaly`` is the pipeline's own verdict
    (its contamination sets the threshold).

    Args:
        uri: where the model's files are (``ModelRef.uri``), loaded once per worker; None when there is no model.
        features: the model's feature columns, the fields of the struct, in the model's order.
        unavailable: the reason every row gets when ``uri`` is None; None for "no model".
    """
    if uri is None:
        return _unscored({"anomaly_score": "double", "is_anomaly": "boolean"}, unavailable or "no model")
    location = uri

    @pandas_udf("anomaly_score double, is_anomaly boolean, unscored_reason string")  # type: ignore[call-overload, untyped-decorator]
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, failure = load_model(location)
        for batch in batches:
            result = pd.DataFrame(
                {"anomaly_score": float("nan"), "is_anomaly": None, "unscored_reason": None}, index=batch.index
            )
            result["is_anomaly"] = result["is_anomaly"].astype(object)
            if model is None:
                result["unscored_reason"] = failure
                yield result
                continue
            reasons = _missing(batch, features)
            ready = reasons.isna()
            if ready.any():
                rows = (
                    batch.loc[ready, features].astype("float64")
                    if not ready.all()
                    else batch[features].astype("float64")
                )
                # One pass of the trees: the verdict is the score against the forest's offset, as predict() does.
                raw = model.score_samples(rows)
                result.loc[ready, "anomaly_score"] = -raw
                result.loc[ready, "is_anomaly"] = raw < _offset(model)
            result["unscored_reason"] = reasons
            yield result

    return lambda features_struct: score(features_struct)


def probability_udf(uri: str | None, features: list[str], unavailable: str | None = None) -> Callable[[Column], Column]:
    """A pandas UDF giving ``struct(probability, unscored_reason)``: the positive class's probability.

    Args:
        uri: where the model's files are (``ModelRef.uri``), loaded once per worker; None when there is no model.
        features: the model's feature columns, the fields of the struct, in the model's order.
        unavailable: the reason every row gets when ``uri`` is None; None for "no model".
    """
    if uri is None:
        return _unscored({"probability": "double"}, unavailable or "no model")
    location = uri

    @pandas_udf("probability double, unscored_reason string")  # type: ignore[call-overload, untyped-decorator]
    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model, failure = load_model(location)
        for batch in batches:
            result = pd.DataFrame({"probability": float("nan"), "unscored_reason": None}, index=batch.index)
            if model is None:
                result["unscored_reason"] = failure
                yield result
                continue
            reasons = _missing(batch, features)
            ready = reasons.isna()
            if ready.any():
                result.loc[ready, "probability"] = model.predict_proba(batch.loc[ready, features].astype("float64"))[
                    :, 1
                ]
            result["unscored_reason"] = reasons
            yield result

    return lambda features_struct: score(features_struct)


def features_struct(features: list[str]) -> Column:
    """The feature columns as one struct, as doubles (the UDFs' input)."""
    return F.struct(*[F.col(name).cast("double").alias(name) for name in features])
