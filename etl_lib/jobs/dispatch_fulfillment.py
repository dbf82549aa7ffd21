"""Job ``dispatch_fulfillment``: the outbox's pending fulfilment requests, each an AWS Step Functions execution.

The relay itself is :mod:`etl_lib.serving.fulfillment`: one execution per request, named after it, so that no
retry or restart starts a second; the execution's ARN, its status and the calls it took are written on the
request's row of ``gold/fulfillment_requests``.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig
from etl_lib.core.run import JobResult, RunContext, TableWrite, run_metadata
from etl_lib.errors import JobFailedError
from etl_lib.io import lakehouse
from etl_lib.serving import fulfillment


def dispatch_fulfillment(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Start an execution of ``fulfillment.state_machine_arn`` for each pending request, and record each.

    Returns:
        The outbox's rows written, and how many requests were started, failed, left pending, seen to end.

    Raises:
        ConfigError: if ``fulfillment.state_machine_arn`` is not set.
        JobFailedError: if Step Functions did not take calls after their retries (unreachable, throttling, the
            state machine gone, denied): the requests not started stay pending, the others' outcomes are written,
            and a later run goes on.
    """
    with lakehouse.commit_metadata(spark, run_metadata(context, context.job)):
        fulfillment.prepare_outbox(spark, config.lakehouse.table_path("gold", "fulfillment_requests"))
        dispatch = fulfillment.relay(spark, config, clock=context.clock)
    result = JobResult(job=context.job, run_id=context.run_id)
    if dispatch.outcomes:
        path = config.lakehouse.table_path("gold", "fulfillment_requests")
        result.writes.append(TableWrite("gold", "fulfillment_requests", path, len(dispatch.outcomes), dispatch.version))
    result.metrics["requests_found"] = dispatch.found
    result.metrics["requests_started"] = dispatch.count("started")
    result.metrics["requests_failed"] = dispatch.count("failed")
    result.metrics["requests_pending"] = dispatch.left
    if dispatch.out_of_reach is not None:
        raise JobFailedError(
            f"Step Functions did not take the fulfillment requests: {dispatch.out_of_reach}; {dispatch.left} left "
            f"pending (none lost), {dispatch.count('started')} started: run dispatch_fulfillment again"
        )
    return result
