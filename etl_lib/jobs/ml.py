"""Jobs ``train_models`` and ``score``."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import MlConfig, SuiteConfig
from etl_lib.core.run import JobResult, RunContext, run_metadata
from etl_lib.errors import ConfigError, JobFailedError
from etl_lib.io import degraded, lakehouse
from etl_lib.io.degraded import Origin, SinkGuard
from etl_lib.layers.silver import LINE_ID
from etl_lib.ml import anomaly, churn, tracking
from etl_lib.quality.apply import check
from etl_lib.quality.audit import Stamp

log = logging.getLogger(__name__)

#: Types of the suite's own models that MLflow's skops serialisation wants declared trusted.
SKOPS_TRUSTED = ["sklearn.tree._tree.Tree", "numpy.dtype"]


def _require_table(spark: SparkSession, config: SuiteConfig, layer: str, table: str) -> str:
    path = config.lakehouse.table_path(layer, table)
    if not lakehouse.is_delta_table(spark, path):
        raise ConfigError(f"{layer}/{table} does not exist under {config.lakehouse.root}; run the batch layer first")
    return path


def _log_model(model: Any, name: str, sample: Any, config: SuiteConfig, context: RunContext) -> str:
    """Log and register ``model`` in the active MLflow run; promote it when so configured. Returns its version."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    output = model.predict_proba(sample)[:, 1] if hasattr(model, "predict_proba") else -model.score_samples(sample)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(sample, output),
        registered_model_name=name,
        input_example=sample.head(3),
        # The suite trained these models itself; skops asks for their types to be trusted by name.
        skops_trusted_types=SKOPS_TRUSTED,
        pip_requirements=tracking.model_requirements(),
    )
    version = str(info.registered_model_version)
    if config.ml.promote_new_models:
        tracking.promote(config.ml, name, version)
    mlflow.set_tag("etl_suite_run_id", context.run_id)
    return version


def _train_anomaly(spark: SparkSession, config: SuiteConfig, context: RunContext) -> dict[str, Any]:
    import mlflow

    settings = config.ml.anomaly
    lines = lakehouse.read(spark, _require_table(spark, config, "silver", "order_lines"))
    purchases = anomaly.purchases(lines).select(LINE_ID, *settings.features).dropna(subset=list(settings.features))
    total = purchases.count()
    fraction = min(1.0, settings.training_rows / max(total, 1))
    # A bounded sample comes to the driver: scikit-learn trains in one process.
    chosen = anomaly.training_sample(purchases, fraction, settings.random_state, key=LINE_ID)
    sample: Any = chosen.drop(LINE_ID).toPandas()
    if len(sample) < settings.sample_size:
        raise JobFailedError(
            f"train_models: {len(sample)} purchase lines to train the Isolation Forest on; "
            f"it needs at least its sub-sample size, {settings.sample_size}"
        )
    model, metrics = anomaly.fit(sample, settings)
    with mlflow.start_run(run_name=f"{settings.model_name} {context.run_id}"):
        mlflow.log_params(
            {
                "trees": settings.trees,
                "sample_size": settings.sample_size,
                "contamination": settings.contamination,
                "features": ",".join(settings.features),
                "random_state": settings.random_state,
                "rows_available": total,
            }
        )
        mlflow.log_metrics(metrics)
        scores = -model.score_samples(sample[settings.features].astype("float64"))
        counts, edges = np.histogram(scores, bins=40)
        mlflow.log_dict({"bin_edges": edges.tolist(), "counts": counts.tolist()}, "score_distribution.json")
        version = _log_model(model, settings.model_name, sample[settings.features].astype("float64"), config, context)
    return {
        "anomaly_model_version": version,
        "anomaly_training_rows": len(sample),
        **{f"anomaly_{k}": round(v, 4) for k, v in metrics.items()},
    }


def _train_churn(spark: SparkSession, config: SuiteConfig, context: RunContext) -> dict[str, Any]:
    import mlflow
    from sklearn.metrics import roc_auc_score

    settings = config.ml.churn
    if config.batch is None:
        raise ConfigError(f"{config.source_file}: batch: churn features need the batch section (customer segments)")
    lines = lakehouse.read(spark, _require_table(spark, config, "silver", "order_lines"))
    last = lines.agg(F.max("invoice_day")).first()
    if last is None or last[0] is None:
        raise ConfigError("silver/order_lines holds no dated lines to learn churn from")
    labelled = churn.labelled_customers(lines, last[0], settings, config.batch.customer_segments)
    # In key order: the folds and the fitted models depend on the rows' order, which must not follow file layout.
    customers: Any = labelled.orderBy("customer_id").toPandas()
    features = customers[settings.features].astype("float64")
    labels = customers["churned"]
    churned = int(labels.sum()) if len(labels) else 0
    if min(churned, len(labels) - churned) < settings.folds:
        raise JobFailedError(
            f"train_models: {len(labels)} customers active before the churn cutoff, {churned} of them churned: "
            f"too few of each kind for {settings.folds}-fold cross-validation (the data must span more than "
            f"{settings.inactive_days} days)"
        )
    best, model, scores = churn.select_model(features, labels, settings.folds, churn.candidates())
    with mlflow.start_run(run_name=f"{settings.model_name} {context.run_id}"):
        mlflow.log_params(
            {
                "features": ",".join(settings.features),
                "inactive_days": settings.inactive_days,
                "cutoff": str(churn.cutoff(last[0], settings.inactive_days)),
                "chosen": best,
                "customers": len(customers),
                "churn_rate": round(float(labels.mean()), 4),
            }
        )
        mlflow.log_metrics({f"cv_roc_auc_{name}": score for name, score in scores.items()})
        mlflow.log_metric("training_roc_auc", float(roc_auc_score(labels, model.predict_proba(features)[:, 1])))
        version = _log_model(model, settings.model_name, features, config, context)

    telco, telco_labels = churn.telco_frame(settings.telco_path)
    telco_best, telco_model, telco_scores = churn.select_model(
        telco, telco_labels, settings.folds, churn.telco_candidates()
    )
    with mlflow.start_run(run_name=f"{settings.telco_model_name} {context.run_id}"):
        mlflow.log_params(
            {"rows": len(telco), "chosen": telco_best, "churn_rate": round(float(telco_labels.mean()), 4)}
        )
        mlflow.log_metrics({f"cv_roc_auc_{name}": score for name, score in telco_scores.items()})
        telco_version = _log_model(telco_model, settings.telco_model_name, telco, config, context)
    return {
        "churn_model": best,
        "churn_cv_roc_auc": round(scores[best], 4),
        "churn_model_version": version,
        "churn_customers": len(customers),
        "telco_model": telco_best,
        "telco_cv_roc_auc": round(telco_scores[telco_best], 4),
        "telco_model_version": telco_version,
    }


def train_models(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Train the purchase anomaly model and the churn models, log and register them in MLflow.

    Returns:
        Metrics: each model's version and its (cross-validated) quality.

    Raises:
        ConfigError: if the batch layer's tables are not there yet.
    """
    tracking.use(config.ml)
    result = JobResult(job=context.job, run_id=context.run_id)
    result.metrics.update(_train_anomaly(spark, config, context))
    result.metrics.update(_train_churn(spark, config, context))
    result.metrics["tracking_uri"] = tracking.tracking_uri(config.ml)
    return result


def _announce_campaign(spark: SparkSession, config: SuiteConfig, high_risk: int, context: RunContext) -> None:
    """The retention campaign's SNS message; SNS out of reach is given up and recorded, the scores stand."""
    arn = config.ml.churn.campaign_sns_topic_arn
    if not arn or not high_risk:
        return
    from etl_lib.quality.alerts import aws_client, send_sns

    body = json.dumps(
        {
            "campaign": "churn_prevention",
            "customers": high_risk,
            "run_id": context.run_id,
            "table": "gold/retention_campaign",
        }
    )
    guard = SinkGuard(config.sinks, Origin(context.run_id, context.job))
    client = aws_client(config.quality.alerts, config.services, "sns", config.sinks)
    send_sns(guard, client, arn, "Retention campaign", body, f"retention campaign of {high_risk} customers")
    degraded.record(spark, config.lakehouse, guard.drain())


def _scoring_metrics(
    ml: MlConfig,
    scores: DataFrame,
    scored_lines: DataFrame,
    churn_model: tracking.ModelRef | None,
    anomaly_model: tracking.ModelRef | None,
) -> dict[str, int | float | str]:
    """The run's counts: customers and purchase lines scored and not, by churn risk band, and anomalies found."""
    counts = scores.agg(
        F.count("*").alias("customers"),
        F.sum(F.col("unscored_reason").isNotNull().cast("int")).alias("unscored"),
        *[F.sum((F.col("churn_risk") == name).cast("int")).alias(f"risk_{name}") for name in ml.churn.risk_bands.names],
    ).first()
    line_counts = scored_lines.agg(
        F.count("*").alias("lines"),
        F.sum(F.col("is_anomaly").cast("int")).alias("anomalies"),
        F.sum(F.col("anomaly_unscored_reason").isNotNull().cast("int")).alias("unscored"),
    ).first()
    assert counts is not None
    assert line_counts is not None
    return {
        "churn_model_version": churn_model.version if churn_model else "none",
        "customers_scored": int(counts["customers"]) - int(counts["unscored"] or 0),
        "customers_unscored": int(counts["unscored"] or 0),
        **{f"churn_risk_{name}": int(counts[f"risk_{name}"] or 0) for name in ml.churn.risk_bands.names},
        "anomaly_model_version": anomaly_model.version if anomaly_model else "none",
        "purchase_lines_scored": int(line_counts["lines"]) - int(line_counts["unscored"] or 0),
        "purchase_lines_unscored": int(line_counts["unscored"] or 0),
        "anomalies": int(line_counts["anomalies"] or 0),
    }


def score(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Score customers for churn and purchases for anomalies with the models under the alias.

    Writes ``gold/churn_scores``, ``gold/retention_campaign`` (high-risk customers, one set per run) and
    ``gold/purchase_anomalies``. Rows that could not be scored carry the reason, and are counted.
    """
    tracking.use(config.ml)
    ml = config.ml
    lake = config.lakehouse
    result = JobResult(job=context.job, run_id=context.run_id)
    stamp = Stamp(context.run_id, context.job, None, context.run_time)

    churn_model = tracking.champion(ml, ml.churn.model_name)
    missing = f"no model {ml.churn.model_name!r} under alias {ml.alias!r} in {tracking.tracking_uri(ml)}"
    customers = lakehouse.read(spark, _require_table(spark, config, "gold", "customer_features"))
    scores = (
        customers.transform(churn.with_churn_scores(churn_model, ml.churn, missing))
        .withColumn("scored_at", F.lit(context.run_time).cast("timestamp"))
        .persist()
    )
    campaign = scores.transform(
        churn.retention_campaign(ml.churn.risk_bands.names[-1], context.run_id, context.run_time)
    )
    anomaly_model = tracking.champion(ml, ml.anomaly.model_name)
    no_anomaly_model = f"no model {ml.anomaly.model_name!r} under alias {ml.alias!r} in {tracking.tracking_uri(ml)}"
    lines = lakehouse.read(spark, _require_table(spark, config, "silver", "order_lines"))
    scoring = anomaly.with_anomaly_scores(anomaly_model, ml.anomaly.features, unavailable=no_anomaly_model)
    scored_lines = (
        anomaly.purchases(lines)
        .select(LINE_ID, "invoice_no", "stock_code", "customer_id", "invoice_date", *ml.anomaly.features)
        .transform(scoring)
        .withColumn("scored_at", F.lit(context.run_time).cast("timestamp"))
        .persist()
    )
    checked, _ = check(spark, config, "gold", "purchase_anomalies", scored_lines, stamp, context.run_time)
    paths = {
        name: lake.table_path("gold", name) for name in ("churn_scores", "retention_campaign", "purchase_anomalies")
    }
    before = {name: lakehouse.current_version(spark, path) for name, path in paths.items()}
    with lakehouse.commit_metadata(spark, run_metadata(context, "score")):
        lakehouse.overwrite(scores, paths["churn_scores"])
        lakehouse.append(campaign, paths["retention_campaign"])
        lakehouse.overwrite(checked, paths["purchase_anomalies"])
    result.metrics.update(_scoring_metrics(ml, scores, scored_lines, churn_model, anomaly_model))
    _announce_campaign(spark, config, int(result.metrics[f"churn_risk_{ml.churn.risk_bands.names[-1]}"]), context)
    if result.metrics["customers_unscored"] or result.metrics["purchase_lines_unscored"]:
        log.warning("some rows could not be scored; their reasons are in the tables: %s", result.metrics)
    for name, path in paths.items():
        result.writes.append(lakehouse.writes_of_run(spark, "gold", name, path, before[name], context.run_id))
    scores.unpersist()
    scored_lines.unpersist()
    return result
