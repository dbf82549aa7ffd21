"""The fulfilment relay's names, inputs and settings (the relay itself: integration/test_fulfillment)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from etl_lib.config import load_config
from etl_lib.errors import ConfigError
from etl_lib.serving.fulfillment import Request, execution_name
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
        "purchased_at": dt.datetime(2010, 12, 1, 8, 26),
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
