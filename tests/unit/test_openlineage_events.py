"""The OpenLineage events the suite emits, read back into the OpenLineage client's own types."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etl_lib.config import load_config
from etl_lib.lineage.openlineage import Emitter
from tests.openlineage_types import check_run_event

PROJECT = Path(__file__).resolve().parents[2]
AT = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def emitted(tmp_path: Path) -> list[dict[str, Any]]:
    """A run's events as the suite writes them: a START, a COMPLETE with inputs and outputs, a streaming FAIL."""
    config = load_config(PROJECT / "conf" / "local.yaml", [f"lakehouse.root={tmp_path / 'lake'}"])
    emitter = Emitter(config, "batch_layer", "run-1")
    emitter.emit("START", AT, "4.1.1", inputs=[("silver/order_lines", 3), ("files:/landing/orders", None)])
    emitter.emit(
        "COMPLETE", AT, "4.1.1", [("silver/order_lines", 3)], [("gold/daily_revenue", 4, 305), ("gold/x", None, None)]
    )
    emitter.emit("FAIL", AT, "4.1.1", error="the source went away", streaming=True)
    lines = (tmp_path / "lake" / "_lineage" / "openlineage.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_every_event_is_one_the_client_s_types_read_and_write_back_the_same(emitted: list[dict[str, Any]]) -> None:
    events = [check_run_event(event) for event in emitted]
    assert [event.eventType.value for event in events if event.eventType] == ["START", "COMPLETE", "FAIL"]
    complete = emitted[1]
    assert complete["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 305
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "4"
    assert emitted[2]["run"]["facets"]["errorMessage"]["message"] == "the source went away"
    assert emitted[2]["job"]["facets"]["jobType"]["processingType"] == "STREAMING"


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split("/")

    def change(event: dict[str, Any]) -> None:
        place: Any = event
        for key in parents:
            place = place[int(key)] if key.isdigit() else place[key]
        if value is KeyError:
            del place[last]
        else:
            place[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_set("run/runId", "run-1"), "badly formed hexadecimal UUID"),
        (_set("eventTime", "2026-01-01"), "has to contain time"),
        (_set("eventType", "DONE"), "'DONE' is not a valid EventType"),
        (_set("job/name", KeyError), "missing 1 required positional argument: 'name'"),
        (_set("job/nam", "x"), "nam not a field of Job"),
        (_set("outputs/0/outputFacets/outputStatistics/rowCount", "305"), "'305' is no <class 'int'>"),
        (_set("outputs/0/outputFacets/outputStatistics/_schemaURL", "https://example.com/x"), "no facet of the client"),
        (_set("run/facets/jobType", {"_producer": "https://x", "_schemaURL": "x"}), "no facet of the client"),
        (_set("inputs/0/facets", []), "is not an object"),
    ],
)
def test_an_event_off_the_specification_is_refused(
    emitted: list[dict[str, Any]], change: Callable[[dict[str, Any]], None], error: str
) -> None:
    event = copy.deepcopy(emitted[1])
    change(event)
    with pytest.raises((AssertionError, ValueError, TypeError), match=error):
        check_run_event(event)


def test_a_facet_in_the_wrong_place_is_refused(emitted: list[dict[str, Any]]) -> None:
    event = copy.deepcopy(emitted[1])
    event["run"]["facets"]["jobType"] = emitted[1]["job"]["facets"]["jobType"]
    with pytest.raises(AssertionError, match="a JobTypeJobFacet where a RunFacet goes"):
        check_run_event(event)
