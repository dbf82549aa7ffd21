"""Machine learning: anomaly checks and churn scores."""

from __future__ import annotations

from pydantic import Field

from etl_lib.config.models.batch import Band, Bands
from etl_lib.config.types import Identifier, Location, _Section


class AnomalyConfig(_Section):
    """The Isolation Forest that checks purchases."""

    model_name: str = "purchase_anomaly"
    #: Columns of an order line (or purchase event) the model sees.
    features: list[Identifier] = Field(default_factory=lambda: ["quantity", "unit_price", "amount"])
    trees: int = Field(default=100, ge=1)
    sample_size: int = Field(default=256, ge=2)
    contamination: float = Field(default=0.005, gt=0, lt=0.5)
    random_state: int = 42
    #: Rows sampled to the driver for training (about this many, chosen by a hash of ``line_id`` seeded with
    #: ``random_state``: the same rows whatever the table's file layout).
    training_rows: int = Field(default=200_000, ge=1000)
    #: Score order lines as the batch layer writes them, and purchases as the speed layer does.
    in_batch_layer: bool = True
    in_speed_layer: bool = True


class ChurnConfig(_Section):
    """The churn models: Online Retail customers, and the Telco data set."""

    model_name: str = "customer_churn"
    telco_model_name: str = "telco_churn"
    telco_path: Location = Field(
        default="./data/telco_churn/WA_Fn-UseC_-Telco-Customer-Churn.csv", validate_default=True
    )
    #: An Online Retail customer has churned who buys nothing in the last this-many days of the data.
    inactive_days: int = Field(default=90, ge=1)
    features: list[Identifier] = Field(
        default_factory=lambda: [
            "recency_days",
            "frequency",
            "monetary",
            "tenure_days",
            "avg_monthly_spend",
            "return_rate",
            "total_spend",
        ]
    )
    folds: int = Field(default=5, ge=2)
    risk_bands: Bands = Field(
        default_factory=lambda: Bands(
            bands=[Band(name="Low", upper=0.3), Band(name="Medium", upper=0.7), Band(name="High")]
        )
    )
    #: The seed's lifetime value: monthly spend / churn probability * 12, capped here.
    ltv_cap: float = Field(default=10_000.0, gt=0)
    #: High-risk customers are also announced on this SNS topic (with ``quality.alerts.local_endpoint``).
    campaign_sns_topic_arn: str | None = None


class MlConfig(_Section):
    """Models: tracked and versioned in MLflow, the one under ``alias`` used for scoring."""

    #: Empty: a SQLite store under ``work_dir`` (artifacts beside it).
    tracking_uri: str | None = None
    work_dir: Location = Field(default="./.work/mlflow", validate_default=True)
    experiment: str = "lakehouse-etl-suite"
    alias: str = "champion"
    #: Point the alias at each newly trained version (off: promote by hand, after review).
    promote_new_models: bool = True
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
