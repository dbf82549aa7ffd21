"""A micro-batch's row of audit/stream_state rides in its bronze commit's metadata as JSON and comes back whole."""

from __future__ import annotations

import datetime as dt
import json

from etl_lib.layers.speed_layer import _STATE_COLUMNS, _state_json, _state_row


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
