"""The fulfilment relay's names, inputs and settings (the relay itself: integration/test_fulfillment)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from etl_lib.config import FulfillmentConfig, ServicesConfig, load_config
from etl_lib.errors import ConfigError
from etl_lib.serving.fulfillment import Relay, Request, execution_name, step_functions_client
from tests.ports import closed_port
from tests.unit.test_config import MINIMAL, write

#: What Step Functions accepts as an execution's name.
ALLOWED = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


@pytest.mark.parametrize("request_id", ["pur-039bd5d51dfb1ac5e44112789a12df85", "order_17", "a.b-c"])
def test_a_request_id_step_functions_allows_is_the_execution_s_name(request_id: str) -> None:
    assert execution_name(request_id) == request_id


@pytest.mark.parametrize("request_id", ["order 17", "a/b", "x" * 81, "", "é", "a:b", "{id}"])
def test_another_id_is_named_by_its_digest_the_same_every_time(request_id: str) -> None:
    name = execution_name(request_id)
    assert ALLOWED.match(name)
    assert name == execution_name(request_id)
    assert name.startswith("request-")
    assert execution_name(request_id + "!") != name


def test_the_execution_s_input_is_the_request_as_json() -> None:
    fields = {
        "request_id": "pur-1",
        "customer_id": "17850",
        "session_id": "s-536365",
        "product_id": "85123A",
        "quantity": 6,
        "amount": Decimal("15.300"),
        "purchased_at": dt.datetime(2010, 12, 1, 8, 26, tzinfo=dt.UTC),
    }
    request = Request(fields=fields, status="pending", attempts=0)
    assert json.loads(request.input) == {
        "request_id": "pur-1",
        "customer_id": "17850",
        "session_id": "s-536365",
        "product_id": "85123A",
        "quantity": 6,
        "amount": 15.3,
        "purchased_at": "2010-12-01T08:26:00+00:00",
    }
    # The same request, the same text: a retry's input is the first call's.
    assert Request(fields=dict(reversed(fields.items())), status="pending", attempts=3).input == request.input


def test_the_speed_layer_s_relay_needs_a_state_machine(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"speed\.dispatch_fulfillment: needs fulfillment\.state_machine_arn"):
        load_config(write(tmp_path, MINIMAL + "speed: {dispatch_fulfillment: true}\n"))
    arn = "arn:aws:states:eu-west-1:123456789012:stateMachine:order-fulfillment"
    text = MINIMAL + f"speed: {{dispatch_fulfillment: true}}\nfulfillment: {{state_machine_arn: '{arn}'}}\n"
    assert load_config(write(tmp_path, text)).fulfillment.state_machine_arn == arn
    with pytest.raises(ConfigError, match=r"fulfillment\.state_machine_arn: String should match pattern"):
        load_config(write(tmp_path, MINIMAL + "fulfillment: {state_machine_arn: order-fulfillment}\n"))


ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:order-fulfillment"


def relay_with(stubbed: Callable[[Stubber], None], **settings: Any) -> Relay:
    """A relay whose Step Functions client answers what ``stubbed`` lines up (botocore's own Stubber)."""
    client = boto3.client("stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubbed(stubber)
    stubber.activate()
    return Relay(client, FulfillmentConfig(state_machine_arn=ARN, parallelism=1, **settings), lambda: AT)


AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def pending(request_id: str, attempts: int = 0) -> Request:
    fields = dict.fromkeys(("customer_id", "session_id", "product_id", "quantity", "amount", "purchased_at"))
    return Request(fields={**fields, "request_id": request_id}, status="pending", attempts=attempts)


def test_a_refusal_of_the_request_itself_fails_it_and_the_run_goes_on() -> None:
    def answers(stubber: Stubber) -> None:
        stubber.add_client_error("start_execution", "InvalidExecutionInput", "too large", 400)
        stubber.add_response("start_execution", {"executionArn": ARN + ":r2", "startDate": AT})

    relay = relay_with(answers)
    first, second = relay.act([pending("r1"), pending("r2")])
    assert (first.status, first.attempts, second.status) == ("failed", 1, "started")
    assert "InvalidExecutionInput" in (first.error or "")
    assert relay.out_of_reach is None


def test_a_refusal_of_the_service_leaves_the_request_pending_until_its_calls_are_spent_and_stops_the_run() -> None:
    def answers(stubber: Stubber) -> None:
        stubber.add_client_error("start_execution", "ThrottlingException", "slow down", 400)

    relay = relay_with(answers, max_attempts=3)
    [outcome] = relay.act([pending("r1", attempts=1), pending("r2"), pending("r3")])
    assert (outcome.request_id, outcome.status, outcome.attempts) == ("r1", "pending", 2)
    assert relay.out_of_reach is not None
    assert "ThrottlingException" in relay.out_of_reach
    assert relay.skipped == 2

    relay = relay_with(answers, max_attempts=3)
    [outcome] = relay.act([pending("r1", attempts=2)])
    assert (outcome.status, outcome.attempts) == ("failed", 3)


def test_a_name_taken_is_the_request_s_execution_when_its_input_is_the_request() -> None:
    request = pending("r1")
    arn = ARN.replace(":stateMachine:", ":execution:") + ":r1"

    def answers(stubber: Stubber) -> None:
        for given in (request.input, '{"another": "input"}'):
            stubber.add_client_error("start_execution", "ExecutionAlreadyExists", "taken", 400)
            described = {"executionArn": arn, "stateMachineArn": ARN, "status": "SUCCEEDED", "startDate": AT}
            stubber.add_response("describe_execution", {**described, "input": given}, {"executionArn": arn})

    relay = relay_with(answers)
    mine, another = relay.act([request, request])
    assert (mine.status, mine.execution_arn, mine.execution_status, mine.attempts) == ("started", arn, "SUCCEEDED", 2)
    assert (another.status, another.error) == ("failed", "an execution named r1 exists with another input")


def test_an_express_state_machine_is_refused() -> None:
    def answers(stubber: Stubber) -> None:
        machine = {"stateMachineArn": ARN, "name": "f", "definition": "{}", "roleArn": "arn:aws:iam::1:role/r"}
        stubber.add_response("describe_state_machine", {**machine, "type": "EXPRESS", "creationDate": AT})

    with pytest.raises(ConfigError, match="EXPRESS state machine"):
        relay_with(answers).check_state_machine()


def test_a_version_or_alias_arn_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"fulfillment\.state_machine_arn: String should match pattern"):
        load_config(write(tmp_path, MINIMAL + f"fulfillment: {{state_machine_arn: '{ARN}:prod'}}\n"))


def test_a_service_out_of_reach_never_fails_a_request_even_with_its_calls_spent() -> None:
    closed = closed_port()
    settings = FulfillmentConfig(
        state_machine_arn=ARN,
        local_endpoint=True,
        attempts=2,
        max_attempts=3,
        parallelism=1,
        connect_timeout_seconds=0.5,
    )
    # The relay's own client (botocore's retries, the time-outs) of a local endpoint where nothing listens.
    client = step_functions_client(settings, ServicesConfig.model_validate({"aws": {"port": closed}}))
    relay = Relay(client, settings, lambda: AT)
    [outcome] = relay.act([pending("r1", attempts=5), pending("r2")])
    assert (outcome.request_id, outcome.status, outcome.attempts) == ("r1", "pending", 7)
    assert "Could not connect" in (outcome.error or "")
    assert relay.skipped == 1
