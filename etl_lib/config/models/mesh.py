"""The data mesh: products, domains, the Glue catalog they are published to."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from etl_lib.config.types import Identifier, Location, _Section

Permission = Literal["read", "describe"]


class ProductConfig(_Section):
    """A data product of a domain: a published copy of a lakehouse table, with its contract."""

    #: The table it publishes, as ``layer/name``.
    source: str = Field(pattern=r"^(bronze|silver|gold|audit|mesh)/[a-z][a-z0-9_]*$")
    description: str = ""
    #: The columns published (all when empty).
    columns: list[str] = Field(default_factory=list)
    #: The column whose newest value says how fresh the product is, and how old that may be.
    freshness_column: str | None = None
    max_age: str | None = Field(default=None, pattern=r"^\d+ (second|minute|hour|day)s?$")
    version: str = "1.0.0"


class DomainConfig(_Section):
    """A domain of the data mesh: who owns it, where its products live, who may read them."""

    owner: str = Field(min_length=1)
    description: str = ""
    #: Where the domain's product tables live; empty: ``<lakehouse.root>/mesh``.
    location: Location | None = None
    #: Consumer (team) name: what it may do with every product of the domain.
    consumers: dict[str, list[Permission]] = Field(default_factory=dict)
    products: dict[Identifier, ProductConfig] = Field(default_factory=dict)


class GlueCatalogConfig(_Section):
    """Registration in the AWS Glue Data Catalog and Lake Formation grants (off by default)."""

    enabled: bool = False
    #: Glue database of a domain: this prefix and the domain's name.
    database_prefix: str = ""
    lake_formation: bool = False
    #: Consumer name: its IAM principal (role or user ARN), to which Lake Formation grants are made.
    principals: dict[str, str] = Field(default_factory=dict)
    #: Talk to the local AWS endpoint of ``services.aws`` instead of AWS.
    local_endpoint: bool = False
    region: str | None = None


class MeshConfig(_Section):
    """The data mesh: domains and their products, and the catalogs they are registered in."""

    domains: dict[Identifier, DomainConfig] = Field(default_factory=dict)
    glue: GlueCatalogConfig = Field(default_factory=GlueCatalogConfig)
    #: How many products one run publishes at once.
    max_parallel_products: int = Field(default=4, ge=1)
