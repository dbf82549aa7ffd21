"""The batch layer: bands, SCD2 dimensions."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from etl_lib.config.types import Identifier, _Section


class Band(_Section):
    """One band of a :class:`Bands`: its name, and its upper edge (none for the last band)."""

    name: str
    upper: float | None = None


class Bands(_Section):
    """Named bands over a number, drawn as pandas' ``cut`` draws them (the seed's binning).

    With ``right`` (pandas' default, and the seed's) each band includes its upper edge: with edges 0.3 and 0.7 a
    churn probability of 0.3 is Low and 0.7 Medium. With ``right: false`` a value on an edge is in the band above
    it. The first band has no lower edge and the last no upper one, so every value but NULL gets a band: pandas, given
    the seed's first edge of 0, gives a probability, a spend or a price of 0 none (README, where the suite departs
    from the seed). A list of bands alone is taken as the bands with ``right``.
    """

    #: Whether a value on an edge belongs to the band below it (pandas' ``right=True``) rather than the one above.
    right: bool = True
    bands: list[Band]

    @model_validator(mode="before")
    @classmethod
    def _a_list_is_the_bands(cls, data: Any) -> Any:
        return {"bands": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _edges_increase(self) -> Bands:
        edges = [band.upper for band in self.bands]
        if not edges or edges[-1] is not None or any(edge is None for edge in edges[:-1]):
            raise ValueError("every band but the last needs `upper`; the last band has none")
        numbers = self.edges  # every band's but the last, as checked just above
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise ValueError("band edges must increase")
        return self

    @property
    def names(self) -> list[str]:
        """The bands' names, lowest first."""
        return [band.name for band in self.bands]

    @property
    def edges(self) -> list[float]:
        """The edges between the bands, lowest first."""
        return [band.upper for band in self.bands if band.upper is not None]

    def describe(self) -> str:
        """The bands in words, as ``Low <= 0.3 < Medium <= 0.7 < High`` (``right``) or ``Low < 0.3 <= Medium ...``."""
        below, above = ("<=", "<") if self.right else ("<", "<=")
        words = [self.bands[0].name]
        for band, following in zip(self.bands, self.bands[1:], strict=False):
            words += [below, f"{band.upper:g}", above, following.name]
        return " ".join(words)


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
