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


class FulfillmentConfig(_Section):
    """The relay of the outbox ``gold/fulfillment_requests`` to an AWS Step Functions state machine.

    ``etl-suite run dispatch_fulfillment`` (or the speed layer after each micro-batch, with
    ``speed.dispatch_fulfillment``) starts one execution per pending request, named after the request, and records
    on the request's row the execution, its status and the calls it took.
    """

    #: The STANDARD state machine each request starts an execution of (not a version or alias ARN: executions
    #: are found by name under the state machine's own ARN). Required by the relay.
    state_machine_arn: str | None = Field(
        default=None, pattern=r"^arn:[\w-]+:states:[\w-]+:\d{12}:stateMachine:[A-Za-z0-9_.-]+$"
    )
    #: Talk to the local AWS endpoint of ``services.aws`` instead of AWS.
    local_endpoint: bool = False
    #: AWS's region; empty: the state machine's, from its ARN.
    region: str | None = None
    #: Calls to start one request's execution within a run, the first one included: botocore's ``standard``
    #: retries (exponential backoff with jitter) on throttling, server errors and connections that fail.
    attempts: int = Field(default=4, ge=1, le=20)
    #: Calls over every run after which a request Step Functions keeps refusing (throttled, over a quota, failing,
    #: denied) is ``failed``. A request refused for itself (its name, its input) is ``failed`` at once; one the
    #: service was out of reach for (no connection, no reply) is never failed, only left pending.
    max_attempts: int = Field(default=12, ge=1)
    #: Requests one run relays at most (oldest purchase first); none: all pending.
    max_requests: int | None = Field(default=None, gt=0)
    #: Requests whose outcomes are written to the outbox in one commit: a relay killed in between starts again
    #: from the last commit, and its executions, named after their requests, are not started twice.
    commit_every: int = Field(default=500, gt=0)
    #: Calls to Step Functions in flight at once.
    parallelism: int = Field(default=8, ge=1, le=64)
    #: Also ask, for each request whose execution was still running, how it ended, and record it.
    follow_executions: bool = True
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
    read_timeout_seconds: float = Field(default=10.0, gt=0)
