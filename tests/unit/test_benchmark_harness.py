"""The benchmark harness: ways timed in turns, warm-ups left out of the numbers."""

from __future__ import annotations

import time

from benchmarks.harness import in_turns, measure, summarize


def test_ways_run_in_turns_in_alternating_order_and_warm_ups_are_not_timed() -> None:
    calls: list[tuple[str, int]] = []

    def reported(attempt: int) -> float:
        calls.append(("reported", attempt))
        return 10.0 + attempt  # the seconds of the part it measures

    def wall(attempt: int) -> None:
        calls.append(("wall", attempt))

    timings = in_turns({"reported": reported, "wall": wall}, repeat=3, warmup=2)

    assert calls == [
        ("reported", -2),
        ("wall", -2),
        ("wall", -1),
        ("reported", -1),
        ("reported", 0),
        ("wall", 0),
        ("wall", 1),
        ("reported", 1),
        ("reported", 2),
        ("wall", 2),
    ]
    assert timings["reported"] == summarize([10.0, 11.0, 12.0])
    assert timings["reported"]["median"] == 11.0
    assert len(timings["wall"]["runs"]) == 3
    assert all(0 <= seconds < 1 for seconds in timings["wall"]["runs"])


def test_measure_prepares_every_attempt_untimed_and_times_only_the_runs_after_warm_up() -> None:
    calls: list[tuple[str, int]] = []

    def prepare(attempt: int) -> None:
        calls.append(("prepare", attempt))
        time.sleep(0.2)  # not part of the timed run

    timing = measure(lambda attempt: calls.append(("run", attempt)), repeat=2, warmup=1, prepare=prepare)

    assert calls == [("prepare", -1), ("run", -1), ("prepare", 0), ("run", 0), ("prepare", 1), ("run", 1)]
    assert len(timing["runs"]) == 2
    assert all(0 <= seconds < 0.2 for seconds in timing["runs"])
