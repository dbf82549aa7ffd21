"""Pure steps of the layers: bronze, silver, dimensions, gold, events, privacy; DataFrame in, DataFrame out."""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame

#: A transform: one DataFrame in, one out, nothing read or written (the steps the layers are made of).
Step = Callable[[DataFrame], DataFrame]
