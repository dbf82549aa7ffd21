"""Order fulfilment: the outbox's requests relayed to an AWS Step Functions state machine, as the seed started them.

The speed layer writes a row per purchase to the outbox, ``gold/fulfillment_requests``, as ``pending``. The relay
(:func:`relay`: ``etl-suite run dispatch_fulfillment``, or the speed layer after each micro-batch with
``speed.dispatch_fulfillment``) starts one execution of ``fulfillment.state_machine_arn`` per pending request, with
the request as its input, and writes on the request's row what came of it:

- ``started``: the execution's ARN, its status as last seen (``RUNNING``, then how it ended when
  ``fulfillment.follow_executions`` asks again on later runs) and, for one that failed, its error and cause;
- ``pending`` still: the service could not be reached, or refused the call for a reason not the request's own
  (throttling, a quota, permissions, a server error; in ``error``); later runs try again;
- ``failed``: the service refused the request for itself (:data:`REQUEST_ERRORS`, or its name taken by an execution
  of another input), or refused its calls ``fulfillment.max_attempts`` times; ``error`` says why. A service out of
  reach never fails a request.

``attempts`` counts the calls made for the request over every run. Within a call botocore retries throttling,
server errors and failed connections with exponential backoff and jitter (its ``standard`` mode,
``fulfillment.attempts`` calls in all). Once a request's calls are spent on an unreachable or refusing service, the
run stops starting further requests (they stay ``pending``, untouched) instead of waiting on each in turn; a state
machine gone or out of reach is found before any request is tried (:meth:`Relay.check_state_machine`).

Exactly one execution per request: each is named after its request (:func:`execution_name`), and Step Functions
keeps a name for 90 days, refusing a second execution of it (``ExecutionAlreadyExists``; one still running with the
same input is returned as it is). A relay stopped after starting executions and before writing their outcome
finds, on its next run, each name taken: it looks the execution up and, its input being the request, records it
as the request's. Outcomes are written every ``fulfillment.commit_every`` requests, one MERGE each.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from etl_lib.config import FulfillmentConfig, ServicesConfig, SuiteConfig
from etl_lib.core.run import utc_now
from etl_lib.errors import ConfigError
from etl_lib.io import lakehouse

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

log = logging.getLogger(__name__)

#: The outbox's columns the relay writes, beside ``request_id`` (the speed layer creates them empty).
DISPATCH_SCHEMA = (
    "status STRING, execution_arn STRING, execution_status STRING, attempts INT, error STRING, dispatched_at TIMESTAMP"
)
#: A row of outcomes: what :func:`relay` sets on the outbox's row of a request, and the status and attempts it read
#: there (the row is left as another relay left it, if that one wrote first).
OUTCOME_SCHEMA = "request_id STRING, " + DISPATCH_SCHEMA + ", _was_status STRING, _was_attempts INT"
#: The request's fields an execution gets as its input.
REQUEST_FIELDS = ("request_id", "customer_id", "session_id", "product_id", "quantity", "amount", "purchased_at")
#: The statuses of an execution that has not ended.
RUNNING = ("RUNNING", "PENDING_REDRIVE")
#: What Step Functions answers about a request itself (its name, its input): no later call would start it. Any
#: other refusal (throttling, quotas, permissions, keys, the state machine gone, server errors) is about the
#: service or the account, and leaves every request for a later run.
REQUEST_ERRORS = frozenset({"InvalidName", "InvalidExecutionInput", "ValidationException"})
#: What Step Functions allows in an execution's name (AWS refuses blanks, brackets, wildcards, punctuation).
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def execution_name(request_id: str) -> str:
    """The name of the execution of a request: the request's id when Step Functions allows it as a name.

    Otherwise ``request-`` and the SHA-256 of the id (Step Functions takes at most 80 characters, and no blanks,
    brackets, wildcards or most punctuation). The same request always gets the same name.
    """
    if _NAME.match(request_id):
        return request_id
    return "request-" + hashlib.sha256(request_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Request:
    """A row of the outbox the relay has to act on."""

    fields: dict[str, Any]
    status: str
    attempts: int
    execution_arn: str | None = None

    @classmethod
    def of(cls, row: Row) -> Request:
        """The request of an outbox row."""
        return cls(
            fields={name: row[name] for name in REQUEST_FIELDS},
            status=str(row["status"]),
            attempts=int(row["attempts"] or 0),
            execution_arn=row["execution_arn"],
        )

    @property
    def request_id(self) -> str:
        return str(self.fields["request_id"])

    @property
    def input(self) -> str:
        """The execution's input: the request as JSON (the amount a number, the purchase time ISO 8601, UTC)."""
        return json.dumps(self.fields, default=_json_value, sort_keys=True, separators=(",", ":"))


def _json_value(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime):
        # PySpark hands a timestamp to Python as a naive local time; astimezone reads a naive one so.
        return value.astimezone(dt.UTC).isoformat()
    raise TypeError(f"not a JSON value: {value!r}")


@dataclass(frozen=True)
class Outcome:
    """What the relay found for a request: the values its outbox row takes."""

    request_id: str
    status: str
    execution_arn: str | None
    execution_status: str | None
    attempts: int
    error: str | None
    dispatched_at: dt.datetime
    #: The service could not take calls (unreachable, throttling, failing): the run stops starting requests.
    out_of_reach: bool = False
    #: The row's status and attempts when the relay read it.
    was_status: str = "pending"
    was_attempts: int = 0

    def row(self) -> tuple[object, ...]:
        """The row of outcomes, in the order of :data:`OUTCOME_SCHEMA`."""
        return (
            self.request_id,
            self.status,
            self.execution_arn,
            self.execution_status,
            self.attempts,
            self.error,
            self.dispatched_at,
            self.was_status,
            self.was_attempts,
        )


def _calls_made(response: dict[str, Any] | None, spent: int) -> int:
    """The calls botocore made for one of ours: its retries, from the response; ``spent`` when there is none."""
    if not response or "ResponseMetadata" not in response:
        return spent
    return int(response["ResponseMetadata"].get("RetryAttempts", 0)) + 1


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]


class Relay:
    """Starts (and follows) executions of one state machine for requests, on a boto3 Step Functions client."""

    def __init__(
        self,
        client: Any,
        settings: FulfillmentConfig,
        clock: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        if not settings.state_machine_arn:
            raise ConfigError("fulfillment.state_machine_arn: the relay needs the state machine to start")
        self.client = client
        self.settings = settings
        self.state_machine_arn = settings.state_machine_arn
        self.clock = clock
        self._stopped = threading.Event()
        #: Why the run stopped starting requests (the service out of reach), once it has.
        self.out_of_reach: str | None = None
        #: Pending requests not tried because it had stopped.
        self.skipped = 0
        self._lock = threading.Lock()

    def check_state_machine(self) -> str | None:
        """Why no request can be started now (the state machine gone, the service out of reach), or None.

        Raises:
            ConfigError: if the state machine is an EXPRESS one: Step Functions neither refuses a second execution
                of a name for those nor describes them, so one execution per request cannot be kept.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            machine = self.client.describe_state_machine(stateMachineArn=self.state_machine_arn)
        except (BotoCoreError, ClientError) as error:
            self._stop(_one_line(str(error)))
            return self.out_of_reach
        if machine.get("type") == "EXPRESS":
            raise ConfigError(
                f"fulfillment.state_machine_arn: {self.state_machine_arn} is an EXPRESS state machine, which does not "
                "keep one execution per name; the relay needs a STANDARD one"
            )
        return None

    def execution_arn(self, name: str) -> str:
        """The ARN of the state machine's execution called ``name``."""
        return self.state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name

    def act(self, requests: Sequence[Request]) -> list[Outcome]:
        """Start the pending requests' executions and follow the started ones, ``parallelism`` calls at once.

        Returns:
            The outcome of each request acted on, in order; those left once the service is out of reach have none.
        """
        with ThreadPoolExecutor(max_workers=self.settings.parallelism, thread_name_prefix="fulfillment") as pool:
            outcomes = list(pool.map(self._act_on, requests))
        return [outcome for outcome in outcomes if outcome is not None]

    def _act_on(self, request: Request) -> Outcome | None:
        if self._stopped.is_set():
            if request.status == "pending":
                with self._lock:
                    self.skipped += 1
            return None
        outcome = self.follow(request) if request.status == "started" else self.start(request)
        if outcome is not None and outcome.out_of_reach:
            self._stop(outcome.error or "out of reach")
        return outcome

    def _stop(self, why: str) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self.out_of_reach = why

    def start(self, request: Request) -> Outcome:
        """Start the request's execution, or find the one an earlier run started; never a second one."""
        from botocore.exceptions import BotoCoreError, ClientError

        name = execution_name(request.request_id)
        try:
            response = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=request.input
            )
        except ClientError as error:
            calls = _calls_made(error.response, 1)
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return self._already_started(request, name, calls)
            return self._refused(request, error, calls)
        except BotoCoreError as error:
            return self._refused(request, error, self.settings.attempts)
        return self._outcome(request, "started", _calls_made(response, 1), arn=response["executionArn"], run="RUNNING")

    def _already_started(self, request: Request, name: str, calls: int) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        arn = self.execution_arn(name)
        try:
            execution = self.client.describe_execution(executionArn=arn)
        except (BotoCoreError, ClientError) as error:
            response = error.response if isinstance(error, ClientError) else None
            return self._refused(request, error, calls + _calls_made(response, self.settings.attempts))
        calls += _calls_made(execution, 1)
        if json.loads(execution.get("input") or "null") != json.loads(request.input):
            found = f"an execution named {name} exists with another input"
            return self._outcome(request, "failed", calls, error=found)
        log.info("fulfillment request %s: its execution was started before (%s)", request.request_id, arn)
        return self._outcome(request, "started", calls, arn=arn, run=execution["status"], ended=execution)

    def follow(self, request: Request) -> Outcome | None:
        """How the request's running execution is now (its status; its error and cause once it failed).

        None when Step Functions could not tell: the row stays as last seen, and the run stops its calls.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        arn = request.execution_arn or self.execution_arn(execution_name(request.request_id))
        try:
            execution = self.client.describe_execution(executionArn=arn)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("ExecutionDoesNotExist", "InvalidArn"):
                # Step Functions keeps an execution's history 90 days: no status to follow any more.
                return self._outcome(request, "started", 0, arn=arn, run="UNKNOWN", error=_one_line(str(error)))
            self._stop(_one_line(str(error)))
            return None
        except BotoCoreError as error:
            self._stop(_one_line(str(error)))
            return None
        if execution["status"] in RUNNING:
            return None
        return self._outcome(request, "started", 0, arn=arn, run=execution["status"], ended=execution)

    def _refused(self, request: Request, error: Exception, calls: int) -> Outcome:
        """A call that did not start the execution.

        ``failed`` when the service refused the request for itself (:data:`REQUEST_ERRORS`), or refused its calls
        for ``max_attempts`` calls; else ``pending`` with the error, and the run stops starting further requests.
        """
        from botocore.exceptions import ClientError

        text = _one_line(str(error))
        # Answered: the service saw the call and refused it. Not answered (no connection, no reply in time): it
        # may never have seen it, or started it and the reply was lost; the request is never failed for that,
        # and the next run's start finds an execution it did start under the request's name.
        answered = isinstance(error, ClientError)
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        transient = code not in REQUEST_ERRORS
        spent = request.attempts + calls >= self.settings.max_attempts
        status_now = "failed" if not transient or (answered and spent) else "pending"
        return self._outcome(request, status_now, calls, error=text, out_of_reach=transient)

    def _outcome(
        self,
        request: Request,
        status: str,
        calls: int,
        *,
        arn: str | None = None,
        run: str | None = None,
        error: str | None = None,
        ended: dict[str, Any] | None = None,
        out_of_reach: bool = False,
    ) -> Outcome:
        if ended is not None and ended.get("status") not in (*RUNNING, "SUCCEEDED"):
            # How a failed, timed out or aborted execution ended, as Step Functions tells it.
            error = _one_line(": ".join(str(ended[k]) for k in ("error", "cause") if ended.get(k))) or None
        return Outcome(
            request_id=request.request_id,
            status=status,
            execution_arn=arn,
            execution_status=run,
            attempts=request.attempts + calls,
            error=error,
            dispatched_at=self.clock(),
            out_of_reach=out_of_reach,
            was_status=request.status,
            was_attempts=request.attempts,
        )


def step_functions_client(settings: FulfillmentConfig, services: ServicesConfig) -> Any:
    """A boto3 Step Functions client: AWS in the state machine's region, or the local endpoint when so configured.

    botocore retries a call (``standard`` mode: exponential backoff with jitter) ``fulfillment.attempts`` times in
    all, with the configured time-outs, and keeps a connection per call in flight.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": settings.attempts},
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds,
        max_pool_connections=settings.parallelism,
    )
    if settings.local_endpoint:
        from etl_lib.io.clients import local_client

        return local_client(services.aws, "stepfunctions", config)
    region = settings.region or (settings.state_machine_arn or "::::").split(":")[3]
    return boto3.client("stepfunctions", region_name=region or None, config=config)


def to_act_on(follow: bool, limit: int | None) -> Callable[[DataFrame], DataFrame]:
    """Step from the outbox to the rows the relay acts on, oldest purchase first.

    The ``pending`` rows and, when ``follow``, the ``started`` ones whose execution was last seen running.
    """
    from pyspark.sql import functions as F

    def step(outbox: DataFrame) -> DataFrame:
        wanted = F.col("status") == "pending"
        if follow:
            wanted = wanted | ((F.col("status") == "started") & F.col("execution_status").isin(*RUNNING))
        # Requests to start before executions to follow, so that long-running executions never crowd them out.
        rows = outbox.where(wanted).orderBy(F.col("status") != "pending", "purchased_at", "request_id")
        return rows.limit(limit) if limit is not None else rows

    return step


def prepare_outbox(spark: SparkSession, path: str) -> None:
    """Give an outbox written before the relay existed its columns (empty, ``attempts`` 0); once, before relaying."""
    if lakehouse.is_delta_table(spark, path):
        wanted = spark.createDataFrame([], DISPATCH_SCHEMA).schema
        added = lakehouse.add_columns(spark, path, wanted, "the relay's columns against gold/fulfillment_requests")
        if any(column.startswith("attempts ") for column in added):
            from delta.tables import DeltaTable

            DeltaTable.forPath(spark, path).update("attempts IS NULL", {"attempts": "0"})


@dataclass
class Dispatch:
    """What one relay did: the outcomes written, and whether it stopped for a service out of reach."""

    outcomes: list[Outcome] = field(default_factory=list)
    #: Requests it was to act on.
    found: int = 0
    #: Pending requests it did not try, the service being out of reach.
    skipped: int = 0
    #: The error that stopped it starting requests (the rest left as they were), if one did.
    out_of_reach: str | None = None
    #: The outbox's version after its last commit (None: it wrote nothing).
    version: int | None = None

    def count(self, status: str) -> int:
        """How many of the outcomes have ``status``."""
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def left(self) -> int:
        """Requests still ``pending``: not tried (the service out of reach) or tried in vain."""
        return self.skipped + self.count("pending")


def relay(
    spark: SparkSession,
    config: SuiteConfig,
    *,
    client: Any = None,
    clock: Callable[[], dt.datetime] = utc_now,
) -> Dispatch:
    """Relay the outbox's pending requests to Step Functions and write what came of each on its row.

    Args:
        spark: the session; the outbox's commits carry its commit metadata.
        config: ``fulfillment`` (the state machine and the relay's settings), ``services`` and the lakehouse.
        client: a boto3 Step Functions client; None for :func:`step_functions_client`.
        clock: the time written as ``dispatched_at``.

    Returns:
        What it did. A service out of reach is not raised: the requests stay pending, and :attr:`Dispatch.out_of_reach`
        says why.

    Raises:
        ConfigError: if ``fulfillment.state_machine_arn`` is not set.
    """
    settings = config.fulfillment
    if not settings.state_machine_arn:
        raise ConfigError(f"{config.source_file}: fulfillment.state_machine_arn: the relay needs the state machine")
    path = config.lakehouse.table_path("gold", "fulfillment_requests")
    relaying = Relay(client or step_functions_client(settings, config.services), settings, clock)
    dispatch = Dispatch()
    if not lakehouse.is_delta_table(spark, path):
        log.info("no outbox at %s yet: no fulfillment request to relay", path)
        return dispatch
    chosen = lakehouse.read(spark, path).transform(to_act_on(settings.follow_executions, settings.max_requests))
    requests = [Request.of(row) for row in chosen.collect()]
    dispatch.found = len(requests)
    if requests and relaying.check_state_machine() is not None:
        dispatch.out_of_reach = relaying.out_of_reach
        dispatch.skipped = sum(1 for request in requests if request.status == "pending")
        log.warning("fulfillment: %s; %d requests left pending", dispatch.out_of_reach, dispatch.skipped)
        return dispatch
    chunks = list(_chunks(requests, settings.commit_every))
    for done, chunk in enumerate(chunks, start=1):
        outcomes = relaying.act(chunk)
        if outcomes:
            rows = spark.createDataFrame([outcome.row() for outcome in outcomes], OUTCOME_SCHEMA)
            lakehouse.update_rows(spark, path, rows, ["request_id"], unchanged=("status", "attempts"))
            dispatch.outcomes.extend(outcomes)
            dispatch.version = lakehouse.current_version(spark, path)
        if relaying.out_of_reach is not None:
            dispatch.out_of_reach = relaying.out_of_reach
            untried = [request for rest in chunks[done:] for request in rest if request.status == "pending"]
            dispatch.skipped = relaying.skipped + len(untried)
            log.warning(
                "fulfillment: Step Functions out of reach (%s); %d requests left pending, none lost: a later run "
                "starts them",
                relaying.out_of_reach,
                dispatch.left,
            )
            break
    return dispatch


def _chunks(items: Sequence[Request], size: int) -> Iterable[Sequence[Request]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
