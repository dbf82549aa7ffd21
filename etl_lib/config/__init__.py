"""The suite's configuration: typed models by area, the loader, and secrets.

Everything is importable from ``etl_lib.config`` (``from etl_lib.config import SuiteConfig, load_config``);
the modules say where each part lives: ``types`` (value types), ``models/`` (one module an area),
``loader`` (files and overrides), ``secrets`` (references, redaction), ``paths`` (the project's folders).
"""

from __future__ import annotations

from etl_lib.config.loader import (
    apply_overrides,
    deep_merge,
    default_config_path,
    load_config,
    override_path,
    parse_override,
    read_layered,
    validate_config,
)
from etl_lib.config.models.app import AppConfig, LakehouseConfig, RunConfig, SinksConfig, SparkConfig
from etl_lib.config.models.batch import Band, Bands, BatchConfig, Scd2Config
from etl_lib.config.models.deploy import DatabricksDeployConfig, DeployConfig, EmrDeployConfig, GlueDeployConfig
from etl_lib.config.models.lineage import LineageConfig, OpenLineageConfig
from etl_lib.config.models.mesh import DomainConfig, GlueCatalogConfig, MeshConfig, Permission, ProductConfig
from etl_lib.config.models.ml import AnomalyConfig, ChurnConfig, MlConfig
from etl_lib.config.models.privacy import PiiTreatment, PrivacyConfig, SecretsConfig
from etl_lib.config.models.quality import AlertsConfig, QualityConfig, RuleConfig, RuleType, TableQualityConfig
from etl_lib.config.models.services import (
    AwsServiceConfig,
    KafkaServiceConfig,
    PostgresServiceConfig,
    RedisServiceConfig,
    ServicesConfig,
    SparkClusterServiceConfig,
)
from etl_lib.config.models.serving import FulfillmentConfig, RealtimeStoreConfig, ServingConfig
from etl_lib.config.models.sources import EntityConfig, FileSourceConfig, JdbcSourceConfig, SourceConfig
from etl_lib.config.models.speed import FileStreamConfig, KafkaStreamConfig, KinesisStreamConfig, SpeedConfig
from etl_lib.config.models.suite import SuiteConfig
from etl_lib.config.secrets import REDACTED, names_a_secret, redact, redacted, secret_from_env
from etl_lib.config.types import (
    LAYERS,
    ColumnName,
    ConfValue,
    Identifier,
    Layer,
    Location,
    LoopbackHost,
    QualifiedName,
    SecretRef,
    SparkType,
    _Section,
    interval,
    is_layer,
    is_loopback,
    is_uri,
)

__all__ = [
    "LAYERS",
    "REDACTED",
    "AlertsConfig",
    "AnomalyConfig",
    "AppConfig",
    "AwsServiceConfig",
    "Band",
    "Bands",
    "BatchConfig",
    "ChurnConfig",
    "ColumnName",
    "ConfValue",
    "DatabricksDeployConfig",
    "DeployConfig",
    "DomainConfig",
    "EmrDeployConfig",
    "EntityConfig",
    "FileSourceConfig",
    "FileStreamConfig",
    "FulfillmentConfig",
    "GlueCatalogConfig",
    "GlueDeployConfig",
    "Identifier",
    "JdbcSourceConfig",
    "KafkaServiceConfig",
    "KafkaStreamConfig",
    "KinesisStreamConfig",
    "LakehouseConfig",
    "Layer",
    "LineageConfig",
    "Location",
    "LoopbackHost",
    "MeshConfig",
    "MlConfig",
    "OpenLineageConfig",
    "Permission",
    "PiiTreatment",
    "PostgresServiceConfig",
    "PrivacyConfig",
    "ProductConfig",
    "QualifiedName",
    "QualityConfig",
    "RealtimeStoreConfig",
    "RedisServiceConfig",
    "RuleConfig",
    "RuleType",
    "RunConfig",
    "Scd2Config",
    "SecretRef",
    "SecretsConfig",
    "ServicesConfig",
    "ServingConfig",
    "SinksConfig",
    "SourceConfig",
    "SparkClusterServiceConfig",
    "SparkConfig",
    "SparkType",
    "SpeedConfig",
    "SuiteConfig",
    "TableQualityConfig",
    "_Section",
    "apply_overrides",
    "deep_merge",
    "default_config_path",
    "interval",
    "is_layer",
    "is_loopback",
    "is_uri",
    "load_config",
    "names_a_secret",
    "override_path",
    "parse_override",
    "read_layered",
    "redact",
    "redacted",
    "secret_from_env",
    "validate_config",
]
