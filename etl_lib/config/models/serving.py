"""The serving layer: the real-time store and the reconciled views."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from etl_lib.config.types import _Section


class RealtimeStoreConfig(_Section):
    """Latest per-customer metrics the speed layer keeps in Redis (``services.redis``) for lookups."""

    enabled: bool = False
    key_prefix: str = Field(default="etl-suite:customer:", min_length=1)
    #: Commands sent per pipelined round trip.
    pipeline_size: int = Field(default=500, gt=0)
    #: Keys expire this long after their last update (none: they stay).
    ttl_seconds: int | None = Field(default=None, gt=0)


class ServingConfig(_Section):
    """The lambda serving layer: views joining the batch and speed results, and their reconciliation."""

    #: Where batch results end and speed results begin (ISO time). Empty: the batch layer's high-water mark
    #: (the newest line in silver/order_lines), floored to the speed layer's window.
    cutoff: dt.datetime | None = None
    #: A speed value within this distance of the batch value is a match.
    tolerance: float = Field(default=0.0, ge=0)
    #: Rewrite the speed windows that drift from the batch recomputation (recorded in lineage).
    correct_drift: bool = False
    realtime_store: RealtimeStoreConfig = Field(default_factory=RealtimeStoreConfig)
