"""Reading a data product as a consumer: only with a grant from the product's domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from etl_lib.config import SuiteConfig
from etl_lib.errors import AccessDeniedError, UsageError
from etl_lib.mesh.catalog import ProductRef, glue_database, product_location, table_name

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def resolve(config: SuiteConfig, name: str) -> ProductRef:
    """The product ``domain.product`` as configured.

    Raises:
        UsageError: naming the known products, if there is no such domain or product.
    """
    try:
        ref = ProductRef.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None
    domain = config.mesh.domains.get(ref.domain)
    if domain is None or ref.product not in domain.products:
        known = sorted(f"{d}.{p}" for d, spec in config.mesh.domains.items() for p in spec.products)
        raise UsageError(f"no data product {name!r}; known products: {', '.join(known) or 'none'}")
    return ref


def check_access(config: SuiteConfig, ref: ProductRef, consumer: str, needed: Literal["read", "describe"]) -> None:
    """Refuse unless the domain grants ``consumer`` the permission (and Lake Formation agrees, when in use).

    ``read`` includes ``describe``.

    Args:
        config: the suite configuration (``mesh``, ``services``).
        ref: the product, which is configured (:func:`resolve`).
        consumer: the consumer's name, as the domain's ``consumers`` and ``mesh.glue.principals`` key it.
        needed: the permission asked for.

    Raises:
        AccessDeniedError: saying who may grant it.
    """
    domain = config.mesh.domains[ref.domain]
    permissions = set(domain.consumers.get(consumer, []))
    allowed = needed in permissions or (needed == "describe" and "read" in permissions)
    if not allowed:
        raise AccessDeniedError(
            f"consumer {consumer!r} has no {needed} grant on data product {ref}; "
            f"domain {ref.domain!r} grants {_grants(domain.consumers) or 'nobody'}; ask its owner {domain.owner}"
        )
    glue = config.mesh.glue
    if glue.enabled and glue.lake_formation:
        from etl_lib.mesh.glue import LAKE_FORMATION_PERMISSIONS, granted_permissions

        principal = glue.principals.get(consumer)
        database, table = glue_database(glue.database_prefix, ref.domain), table_name(ref)
        held = granted_permissions(glue, config.services, principal, database, table) if principal else set()
        missing = set(LAKE_FORMATION_PERMISSIONS[needed]) - held
        if missing:
            raise AccessDeniedError(
                f"consumer {consumer!r} ({principal or 'no principal'}) lacks Lake Formation permission "
                f"{', '.join(sorted(missing))} on {database}.{table}"
            )


def _grants(consumers: Mapping[str, Sequence[str]]) -> str:
    return ", ".join(f"{name} ({'/'.join(perms)})" for name, perms in sorted(consumers.items()))


def read_product(spark: SparkSession, config: SuiteConfig, name: str, consumer: str) -> DataFrame:
    """The product ``domain.product`` as ``consumer`` may read it.

    Raises:
        UsageError: for an unknown product.
        AccessDeniedError: if the consumer holds no read grant.
    """
    from etl_lib.io import lakehouse

    ref = resolve(config, name)
    check_access(config, ref, consumer, "read")
    return lakehouse.read(spark, product_location(config.mesh, ref, config.lakehouse.root))
