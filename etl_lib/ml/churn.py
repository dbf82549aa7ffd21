"""Churn: the Online Retail label and features, model selection by cross-validation, and scoring steps.

An Online Retail customer has churned who buys nothing in the last ``inactive_days`` of the data; the
features are the gold customer features as of the day before that window starts, so the model learns
from the past to predict the future. The Telco data set (a published churn benchmark) trains the same
way and checks the method against the ROC-AUC others report on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl_lib.config import Bands, ChurnConfig
from etl_lib.layers import Step
from etl_lib.layers.dimensions import band
from etl_lib.layers.gold import customer_features
from etl_lib.ml.scoring import features_struct, probability_udf
from etl_lib.ml.tracking import ModelRef


def cutoff(last_day: dt.date, inactive_days: int) -> dt.date:
    """The last day the features may see: the day before the churn window."""
    return last_day - dt.timedelta(days=inactive_days)


def labelled_customers(order_lines: DataFrame, last_day: dt.date, config: ChurnConfig, segments: Bands) -> DataFrame:
    """Customers known before the cutoff, their features as of it, and ``churned`` (no purchase after it).

    Args:
        order_lines: silver's order lines.
        last_day: the last invoice day of the data; the cutoff is ``inactive_days`` before it.
        config: the ``ml.churn`` section (``inactive_days``).
        segments: the customer segments' spend bands (``batch.customer_segments``), for the features.
    """
    as_of = cutoff(last_day, config.inactive_days)
    features = order_lines.transform(customer_features(as_of, segments)).where(F.col("first_purchase_at").isNotNull())
    later = (
        order_lines.where((F.col("invoice_day") > F.lit(as_of)) & ~F.col("is_cancellation"))
        .select("customer_id")
        .distinct()
        .withColumn("_bought_later", F.lit(True))
    )
    return (
        features.join(later, "customer_id", "left")
        .select("*", F.col("_bought_later").isNull().cast("int").alias("churned"))
        .drop("_bought_later")
    )


def candidates(random_state: int = 42) -> dict[str, Any]:
    """The models compared: gradient boosting, and logistic regression on scaled features."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "gradient_boosting": Pipeline([("model", GradientBoostingClassifier(random_state=random_state))]),
        "logistic_regression": Pipeline(
            [("impute", SimpleImputer()), ("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))]
        ),
    }


def select_model(
    features: pd.DataFrame, labels: pd.Series, folds: int, models: dict[str, Any]
) -> tuple[str, Any, dict[str, float]]:
    """Cross-validate each model by ROC-AUC and refit the best on everything.

    Args:
        features: one row per example, the model's feature columns.
        labels: 1 for a churned example, 0 otherwise, in the order of ``features``.
        folds: the folds of the stratified cross-validation (at least 2).
        models: name -> unfitted scikit-learn estimator (:func:`candidates`); none is changed.

    Returns:
        The winner's name, the fitted winner, and every model's mean cross-validated ROC-AUC.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=42)
    scores = {
        name: float(np.mean(cross_val_score(model, features, labels, cv=splitter, scoring="roc_auc")))
        for name, model in models.items()
    }
    best = max(scores, key=lambda name: scores[name])
    fitted = clone(models[best]).fit(features, labels)
    return best, fitted, scores


TELCO_CATEGORIES = (
    "gender",
    "Partner",
    "Dependents",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
)
TELCO_NUMBERS = ("SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges")


def telco_frame(path: str) -> tuple[pd.DataFrame, pd.Series]:
    """The Telco data set's features and label.

    ``TotalCharges`` is text, a single space for the 11 customers of tenure 0, who have paid nothing yet:
    that is 0, not a missing value. 'No internet service' and the like are real categories and stay.
    """
    data = pd.read_csv(path)
    charges = data["TotalCharges"].str.strip()
    data["TotalCharges"] = pd.to_numeric(charges.where(charges != "", "0"))
    labels = (data["Churn"] == "Yes").astype(int)
    return data[list(TELCO_CATEGORIES) + list(TELCO_NUMBERS)], labels


def telco_candidates(random_state: int = 42) -> dict[str, Any]:
    """The same two kinds of model, with one-hot encoding of the categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def prepared(model: Any, scale: bool) -> Any:
        numbers: Any = StandardScaler() if scale else "passthrough"
        encode = ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), list(TELCO_CATEGORIES)),
                ("numbers", numbers, list(TELCO_NUMBERS)),
            ]
        )
        return Pipeline([("encode", encode), ("model", model)])

    return {
        "gradient_boosting": prepared(GradientBoostingClassifier(random_state=random_state), scale=False),
        "logistic_regression": prepared(LogisticRegression(max_iter=2000), scale=True),
    }


def with_churn_scores(model: ModelRef | None, config: ChurnConfig, unavailable: str | None = None) -> Step:
    """Step turning customer features into churn scores.

    ``churn_probability`` from the model; ``churn_risk`` by the seed's bands; ``predicted_ltv`` by the seed's
    formula: monthly spend / churn probability * 12, or monthly spend * 24 when the probability is 0, capped.
    """
    udf = probability_udf(model.uri if model else None, config.features, unavailable or "no model to score with")

    def step(customers: DataFrame) -> DataFrame:
        scored = customers.select("*", udf(features_struct(config.features)).alias("_churn"))
        probability = F.col("_churn.probability")
        spend = F.coalesce(F.col("avg_monthly_spend").cast("double"), F.lit(0.0))
        ltv = F.when(probability > 0, spend / probability * 12).otherwise(spend * 24)
        return scored.select(
            "customer_id",
            "country",
            "customer_segment",
            F.col("avg_monthly_spend").cast("double").alias("monthly_spend"),
            probability.alias("churn_probability"),
            band(probability, config.risk_bands).alias("churn_risk"),
            F.when(probability.isNotNull(), F.round(F.least(ltv, F.lit(config.ltv_cap)), 2)).alias("predicted_ltv"),
            F.lit(model.name if model else None).cast("string").alias("model_name"),
            F.lit(model.version if model else None).cast("string").alias("model_version"),
            F.col("_churn.unscored_reason").alias("unscored_reason"),
        )

    return step


def retention_campaign(risk: str, run_id: str, created_at: dt.datetime) -> Step:
    """Step keeping the customers at ``risk`` as campaign rows (the seed's retention trigger).

    Args:
        risk: the ``churn_risk`` band the campaign targets (the highest of ``ml.churn.risk_bands``).
        run_id: the run creating the rows.
        created_at: when they were created (the run's time).
    """

    def step(scores: DataFrame) -> DataFrame:
        return scores.where(F.col("churn_risk") == risk).select(
            "customer_id",
            "churn_probability",
            "predicted_ltv",
            "monthly_spend",
            F.lit("churn_prevention").alias("campaign"),
            "model_version",
            F.lit(run_id).alias("run_id"),
            F.lit(created_at).cast("timestamp").alias("created_at"),
        )

    return step
