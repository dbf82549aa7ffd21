"""The batch layer: bands, SCD2 dimensions."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from etl_lib.config.types import Identifier, _Section


class Band(_Section):
    """One band of a banding: values below ``below`` (and at least the previous band's bound) get ``name``."""

    name: str
    below: float | None = None


def _check_bands(bands: list[Band]) -> list[Band]:
    bounds = [band.below for band in bands]
    if not bands or bounds[-1] is not None or any(bound is None for bound in bounds[:-1]):
        raise ValueError("every band but the last needs `below`; the last band has none")
    numbers = [bound for bound in bounds[:-1] if bound is not None]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise ValueError("band bounds must increase")
    return bands


Bands = Annotated[list[Band], AfterValidator(_check_bands)]


class Scd2Config(_Section):
    """A Type 2 dimension: business keys, the column that orders changes, the attributes whose history is kept."""

    keys: list[Identifier] = Field(min_length=1)
    sequence_by: Identifier
    tracked: list[Identifier] = Field(min_length=1)
    #: Attributes overwritten in place on every version of the key (Type 1).
    type1: list[Identifier] = Field(default_factory=list)


class BatchConfig(_Section):
    """The batch layer: bronze, silver and gold from the extracts."""

    #: Stock codes matching this are products; the rest are classified by ``non_product_codes``.
    product_code_pattern: str = "^[0-9]{5}"
    #: class -> regular expression on the stock code, tried in order.
    non_product_codes: dict[Identifier, str] = Field(default_factory=dict)
    price_categories: Bands
    customer_segments: Bands
    customers: Scd2Config
    #: How many independent tables one run builds at once.
    max_parallel_tables: int = Field(default=2, ge=1)
