"""The speed benchmark's reading of Spark's progress: which micro-batches ran beside the other query's."""

from __future__ import annotations

from benchmarks.speed_layer import _beside, _phases, _span


def batch(at: str, seconds: float, rows: int = 1) -> dict[str, object]:
    """A micro-batch as the benchmark reads it from ``audit/stream_progress``."""
    return {"at": at, "rows": rows, "triggerExecution": int(seconds * 1000), "addBatch": int(seconds * 900)}


def test_a_batch_overlapping_another_querys_is_beside_it_and_one_that_only_touches_it_is_not() -> None:
    ingest = [
        batch("2026-12-06T00:00:00.000Z", 2.0),  # the views batch starts in its middle
        batch("2026-12-06T00:00:10.000Z", 1.0),  # alone
        batch("2026-12-06T00:00:20.000Z", 1.5),  # ends as the next views batch starts
        batch("2026-12-06T00:00:29.500Z", 1.0),  # starts in the views batch's last half second
    ]
    views = [batch("2026-12-06T00:00:01.000Z", 3.0, 2), batch("2026-12-06T00:00:21.500Z", 8.5, 2)]

    assert _beside(ingest, views) == [ingest[0], ingest[3]]
    assert _beside(ingest, []) == []
    assert _span(ingest[2]) == (_span(ingest[0])[0] + 20, _span(ingest[0])[0] + 21.5)


def test_phases_are_medians_of_the_durations_only() -> None:
    batches = [batch("2026-12-06T00:00:00.000Z", 2.0), batch("2026-12-06T00:00:05.000Z", 4.0)]

    assert _phases(batches) == "triggerExecution 3.00 s, addBatch 2.70 s"
