"""Models in the pipeline, on the real data: training, registry aliases, scoring in Spark, unscored rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from etl_lib.config import SuiteConfig
from etl_lib.core.run import RunContext
from etl_lib.io import lakehouse
from etl_lib.ml import anomaly, tracking
from etl_lib.runtime.runner import run_job
from tests.conftest import copied_lake


def context(job: str, run_id: str) -> RunContext:
    return RunContext.new(job, clock=lambda: dt.datetime(2026, 1, 2, tzinfo=dt.UTC), new_id=lambda: run_id)


def with_ml(config: SuiteConfig, **ml: Any) -> SuiteConfig:
    return config.model_copy(update={"ml": config.ml.model_copy(update=ml)})


@pytest.fixture(scope="module")
def trained(
    spark: SparkSession, retail_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ml")
    config = with_ml(copied_lake(retail_lake, root / "lake"), work_dir=str(root / "mlflow"))
    training = run_job("train_models", config, spark, context("train_models", "train-1"))
    scoring = run_job("score", config, spark, context("score", "score-1"))
    return {"config": config, "training": training, "scoring": scoring}


def table(spark: SparkSession, config: SuiteConfig, name: str) -> Any:
    return lakehouse.read(spark, config.lakehouse.table_path("gold", name))


def test_training_reports_cross_validated_roc_auc(trained: dict[str, Any]) -> None:
    metrics = trained["training"].metrics
    assert metrics["telco_cv_roc_auc"] >= 0.83  # published: about 0.84
    assert metrics["churn_cv_roc_auc"] > 0.7
    assert 3_000 < metrics["churn_customers"] < 4_339  # customers who had bought before the churn window
    assert (metrics["anomaly_model_version"], metrics["churn_model_version"], metrics["telco_model_version"]) == (
        "1",
        "1",
        "1",
    )
    assert 0.0 < metrics["anomaly_anomaly_share"] < 0.02
    config: SuiteConfig = trained["config"]
    for name in ("purchase_anomaly", "customer_churn", "telco_churn"):
        found = tracking.champion(config.ml, name)
        assert found is not None
        assert found.version == "1"


def test_each_model_pins_the_packages_it_was_trained_with(trained: dict[str, Any]) -> None:
    from importlib.metadata import version

    import mlflow

    config: SuiteConfig = trained["config"]
    tracking.use(config.ml)
    expected = sorted(
        f"{name}=={version(name)}" for name in ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")
    )
    for name in ("purchase_anomaly", "customer_churn", "telco_churn"):
        found = tracking.champion(config.ml, name)
        assert found is not None
        requirements = Path(mlflow.artifacts.download_artifacts(f"{found.uri}/requirements.txt"))
        assert sorted(requirements.read_text().split()) == expected, name


def test_churn_scores_bands_and_lifetime_value(spark: SparkSession, trained: dict[str, Any]) -> None:
    config: SuiteConfig = trained["config"]
    scores = table(spark, config, "churn_scores")
    assert scores.count() == 4_372
    rows = scores.collect()
    scored = [r for r in rows if r["unscored_reason"] is None]
    unscored = [r for r in rows if r["unscored_reason"] is not None]
    # Customers who never bought (only cancellations) have no recency: they are not given a made-up score.
    assert {r["unscored_reason"] for r in unscored} <= {"missing feature recency_days"}
    assert len(scored) + len(unscored) == 4_372
    # The seed's bands: pandas.cut(bins=[0, 0.3, 0.7, 1.0]), an edge in the band below it; a probability of 0,
    # which pandas gives no band, is Low.
    seed = pd.cut([r["churn_probability"] for r in scored], bins=[0, 0.3, 0.7, 1.0], labels=["Low", "Medium", "High"])
    assert [r["churn_risk"] for r in scored] == [str(name) if isinstance(name, str) else "Low" for name in seed]
    for row in scored:
        probability = row["churn_probability"]
        spend = row["monthly_spend"] or 0.0
        expected = min(spend / probability * 12 if probability > 0 else spend * 24, 10_000)
        assert row["predicted_ltv"] == pytest.approx(round(expected, 2), abs=0.01)
        assert (row["model_name"], row["model_version"]) == ("customer_churn", "1")
    high = sum(1 for r in scored if r["churn_risk"] == "High")
    campaign = table(spark, config, "retention_campaign").where("run_id = 'score-1'")
    assert campaign.count() == high
    assert trained["scoring"].metrics["churn_risk_High"] == high


def test_distributed_anomaly_scores_equal_single_process_scores(spark: SparkSession, trained: dict[str, Any]) -> None:
    import mlflow.sklearn

    config: SuiteConfig = trained["config"]
    model = tracking.champion(config.ml, "purchase_anomaly")
    assert model is not None
    features = config.ml.anomaly.features
    lines = anomaly.purchases(lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines")))
    sample = lines.select("line_id", *features).orderBy("line_id").limit(5_000).repartition(4)
    scored = sample.transform(anomaly.with_anomaly_scores(model, features)).orderBy("line_id").toPandas()
    local = mlflow.sklearn.load_model(model.uri)
    expected = -local.score_samples(scored[features].astype("float64"))
    assert np.max(np.abs(scored["anomaly_score"].to_numpy() - expected)) < 1e-9
    assert (scored["is_anomaly"].to_numpy() == (local.predict(scored[features].astype("float64")) == -1)).all()
    assert set(scored["anomaly_model_version"]) == {"1"}


def test_the_training_sample_does_not_depend_on_how_the_rows_are_partitioned(spark: SparkSession) -> None:
    line_id = F.format_string("line-%05d", "id").alias("line_id")
    rows = spark.range(20_000).select(line_id, (F.col("id") % 97).alias("x"))
    one = anomaly.training_sample(rows.coalesce(1), 0.1, seed=42, key="line_id").toPandas()
    shuffled = rows.repartition(7, F.rand(3))
    assert one.equals(anomaly.training_sample(shuffled, 0.1, seed=42, key="line_id").toPandas())
    assert 1_800 < len(one) < 2_200
    assert list(one["line_id"]) == sorted(one["line_id"])
    other_seed = anomaly.training_sample(rows, 0.1, seed=7, key="line_id").toPandas()
    assert not one["line_id"].equals(other_seed["line_id"])
    whole = anomaly.training_sample(shuffled, 1.0, seed=42, key="line_id").toPandas()
    assert whole.equals(rows.toPandas())


def test_purchase_anomalies_are_scored_and_judged_by_the_quality_layer(
    spark: SparkSession, trained: dict[str, Any]
) -> None:
    from etl_lib.io.portable import table_rows

    config: SuiteConfig = trained["config"]
    lines = table(spark, config, "purchase_anomalies")
    summary = lines.agg(F.count("*"), F.sum(F.col("is_anomaly").cast("int")), F.count("anomaly_score")).first()
    assert summary is not None
    assert summary[0] == summary[2] > 500_000
    assert summary[1] == trained["scoring"].metrics["anomalies"] > 0
    results = table_rows(config.lakehouse.table_path("audit", "quality_results"), "run_id = 'score-1'")
    assert {r["rule"] for r in results if r["table"] == "gold/purchase_anomalies"} == {"not_anomalous", "scored"}


def test_a_promoted_model_is_used_by_the_next_scoring_run(spark: SparkSession, trained: dict[str, Any]) -> None:
    config = with_ml(trained["config"], promote_new_models=False)
    retrained = run_job("train_models", config, spark, context("train_models", "train-2"))
    assert retrained.metrics["churn_model_version"] == "2"
    run_job("score", config, spark, context("score", "score-2"))
    assert {
        r["model_version"] for r in table(spark, config, "churn_scores").select("model_version").distinct().collect()
    } <= {"1", None}
    tracking.promote(config.ml, "customer_churn", "2")
    tracking.promote(config.ml, "purchase_anomaly", "2")
    run_job("score", config, spark, context("score", "score-3"))
    assert {
        r["model_version"] for r in table(spark, config, "churn_scores").where("unscored_reason IS NULL").collect()
    } == {"2"}
    versions = table(spark, config, "purchase_anomalies").select("anomaly_model_version").distinct().collect()
    assert {r[0] for r in versions} == {"2"}


def test_without_a_model_rows_are_marked_unscored_not_given_a_default(
    spark: SparkSession, trained: dict[str, Any]
) -> None:
    config = with_ml(trained["config"], alias="missing")
    result = run_job("score", config, spark, context("score", "score-none"))
    assert (result.metrics["customers_scored"], result.metrics["customers_unscored"]) == (0, 4_372)
    reasons = table(spark, config, "churn_scores").select("unscored_reason", "churn_probability").distinct().collect()
    assert len(reasons) == 1
    assert reasons[0]["churn_probability"] is None
    assert reasons[0]["unscored_reason"].startswith("no model 'customer_churn' under alias 'missing'")


def test_the_batch_layer_scores_new_purchases_with_the_champion(
    spark: SparkSession, trained: dict[str, Any], tmp_path: Path
) -> None:
    config: SuiteConfig = trained["config"]
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "new.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "581588,85123A,CREAM HANGING HEART T-LIGHT HOLDER,6,2011-12-09 13:00:00,2.95,17850,United Kingdom\n"
        "581589,22423,REGENCY CAKESTAND 3 TIER,9000,2011-12-09 13:05:00,12.75,17850,United Kingdom\n"
        "C581590,22423,REGENCY CAKESTAND 3 TIER,-1,2011-12-09 13:06:00,12.75,17850,United Kingdom\n"
    )
    source = config.sources["online_retail"].model_dump(mode="json")
    extra = {**source, "format": "csv", "path": str(landing), "table": "late_extract"}
    updated = config.model_validate(
        {
            **config.model_dump(mode="json"),
            "sources": {**{k: v.model_dump(mode="json") for k, v in config.sources.items()}, "late_extract": extra},
        }
    )
    run_job("batch_layer", updated, spark, context("batch_layer", "batch-3"))
    new = lakehouse.read(spark, config.lakehouse.table_path("silver", "order_lines")).where("_run_id = 'batch-3'")
    rows = {r["invoice_no"]: r for r in new.collect()}
    champion = tracking.champion(config.ml, "purchase_anomaly")
    assert champion is not None
    assert rows["581588"]["anomaly_model_version"] == champion.version
    assert rows["581588"]["is_anomaly"] is False
    assert rows["581589"]["is_anomaly"] is True  # 9,000 cake stands in one line
    assert rows["C581590"]["anomaly_score"] is None
    assert rows["C581590"]["anomaly_unscored_reason"] == "not scored: the anomaly model applies to purchases only"
