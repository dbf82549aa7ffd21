"""Lineage: the OpenLineage endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from etl_lib.config.types import Location, SecretRef, _Section


class OpenLineageConfig(_Section):
    """Where OpenLineage run events go: a JSON-lines file (default), an HTTP endpoint, or nowhere."""

    transport: Literal["file", "http", "none"] = "file"
    #: Empty: ``<lakehouse.root>/_lineage/openlineage.jsonl``.
    path: Location | None = None
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key_env: str | None = None
    api_key_secret: SecretRef | None = None
    namespace: str = "lakehouse-etl-suite"


class LineageConfig(_Section):
    """Lineage: the audit tables are always written; OpenLineage events go where this says."""

    openlineage: OpenLineageConfig = Field(default_factory=OpenLineageConfig)
