"""A micro-batch's rows of audit/stream_state and audit/quality_results ride in its bronze commit's metadata as JSON
and come back whole."""

from __future__ import annotations

import datetime as dt
import json

from etl_lib.jobs.speed_layer import _STATE_COLUMNS, _result_json, _result_row, _state_json, _state_row
from etl_lib.quality.audit import RESULTS_COLUMNS


def test_a_state_row_comes_back_from_commit_metadata_as_it_was() -> None:
    marks = {"0": dt.datetime(2011, 12, 9, 12, 50), "1": dt.datetime(2011, 12, 9, 12, 49, 30, 5)}
    processed = dt.datetime(2026, 12, 5, 16, 0, tzinfo=dt.UTC)
    first = ("query-1", 0, None, {}, None, 0, 0, 0, 0, 0, processed, "run-1")
    later = ("query-1", 7, marks["0"], marks, dt.datetime(2011, 12, 9, 12, 39, 30), 5, 1, 1, 0, 3, processed, "run-2")
    for row in (first, later):
        assert len(row) == len(_STATE_COLUMNS)
        carried = json.loads(json.dumps(_state_json(row)))  # as a commit's userMetadata holds it
        assert _state_row(carried) == row
    assert _state_json(later)["partition_marks"] == {"0": "2011-12-09T12:50:00", "1": "2011-12-09T12:49:30.000005"}


def test_quality_result_rows_come_back_from_commit_metadata_as_they_were() -> None:
    at = dt.datetime(2026, 12, 5, 16, 0, 0, 250, tzinfo=dt.UTC)
    batch = ("run-1", "speed_layer", "silver/events", 3)
    passed = (
        *batch,
        "known_event_type",
        "allowed_values",
        ["event_type"],
        "warning",
        "warn",
        1.0,
        0.99,
        True,
        0,
        120,
        [],
        "",
        1.0,
        0.8,
        False,
        at,
    )
    failed = (
        *batch,
        "event_id_unique",
        "uniqueness",
        ["event_id"],
        "error",
        "quarantine",
        0.5,
        1.0,
        False,
        1,
        2,
        ["ev-1"],
        "1 of 2 rows fail",
        0.5,
        0.8,
        True,
        at,
    )
    for row in (passed, failed):
        assert len(row) == len(RESULTS_COLUMNS)
        carried = json.loads(json.dumps(_result_json(row)))
        assert _result_row(carried) == row
    assert _result_json(passed)[RESULTS_COLUMNS.index("evaluated_at")] == "2026-12-05T16:00:00.000250+00:00"
