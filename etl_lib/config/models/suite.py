"""The whole configuration: every section, and the checks that span sections."""

from __future__ import annotations

from pydantic import Field, model_validator

from etl_lib.config.models.app import AppConfig, LakehouseConfig, RunConfig, SinksConfig, SparkConfig
from etl_lib.config.models.batch import BatchConfig
from etl_lib.config.models.deploy import DeployConfig
from etl_lib.config.models.lineage import LineageConfig
from etl_lib.config.models.mesh import MeshConfig
from etl_lib.config.models.ml import MlConfig
from etl_lib.config.models.privacy import PrivacyConfig, SecretsConfig
from etl_lib.config.models.quality import QualityConfig
from etl_lib.config.models.services import ServicesConfig
from etl_lib.config.models.serving import FulfillmentConfig, ServingConfig
from etl_lib.config.models.sources import EntityConfig, FileSourceConfig, JdbcSourceConfig, SourceConfig
from etl_lib.config.models.speed import SpeedConfig
from etl_lib.config.types import Identifier, _Section


class SuiteConfig(_Section):
    """The whole configuration of one environment."""

    app: AppConfig
    lakehouse: LakehouseConfig
    spark: SparkConfig
    services: ServicesConfig = Field(default_factory=lambda: ServicesConfig.model_validate({}))
    sources: dict[Identifier, SourceConfig] = Field(default_factory=dict)
    entities: dict[Identifier, EntityConfig] = Field(default_factory=dict)
    batch: BatchConfig | None = None
    speed: SpeedConfig = Field(default_factory=SpeedConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    ml: MlConfig = Field(default_factory=MlConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    fulfillment: FulfillmentConfig = Field(default_factory=FulfillmentConfig)
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)

    #: The file this configuration was read from (not part of the YAML).
    source_file: str = Field(default="<memory>", exclude=True)

    @model_validator(mode="after")
    def _relay_has_its_state_machine(self) -> SuiteConfig:
        if self.speed.dispatch_fulfillment and not self.fulfillment.state_machine_arn:
            raise ValueError(
                "speed.dispatch_fulfillment: needs fulfillment.state_machine_arn, the state machine to start"
            )
        return self

    @model_validator(mode="after")
    def _sources_map_their_entity(self) -> SuiteConfig:
        for name, source in self.sources.items():
            if source.entity is None:
                continue
            entity = self.entities.get(source.entity)
            if entity is None:
                raise ValueError(f"sources.{name}.entity: no entity {source.entity!r} under entities")
            missing = sorted(set(entity.columns) - set(source.columns))
            extra = sorted(set(source.columns) - set(entity.columns))
            if missing or extra:
                raise ValueError(
                    f"sources.{name}.columns: must map every column of entity {source.entity!r}"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; not in the entity {', '.join(extra)}" if extra else "")
                )
        for entity_name, treatments in self.privacy.pii.items():
            entity = self.entities.get(entity_name)
            if entity is None:
                raise ValueError(f"privacy.pii.{entity_name}: no entity {entity_name!r} under entities")
            for column in treatments:
                if entity.columns.get(column) != "string":
                    raise ValueError(
                        f"privacy.pii.{entity_name}.{column}: only text columns of the entity can be hashed or masked"
                    )
            if entity_name == "events" and "event_id" in treatments:
                raise ValueError("privacy.pii.events.event_id: the stream deduplicates by event_id; it is no PII")
        if self.privacy.hash_key_secret is None and any(self.privacy.pii.values()):
            # Besides hashed columns, the key makes the row digests (line ids, payload digests) keyed.
            raise ValueError("privacy.hash_key_secret: personal columns need the key's secret reference")
        tables = [source.table for source in self.sources.values()]
        duplicates = sorted({table for table in tables if tables.count(table) > 1})
        if duplicates:
            raise ValueError(f"sources: two sources land in the same bronze table {', '.join(duplicates)}")
        return self

    def sources_of(self, entity: str) -> dict[str, FileSourceConfig | JdbcSourceConfig]:
        """The sources that feed ``entity``, by name."""
        return {name: source for name, source in self.sources.items() if source.entity == entity}
