from __future__ import annotations

import threading

import pytest
from pyspark.sql import SparkSession

from etl_lib.core.run import TableWrite
from etl_lib.errors import JobFailedError
from etl_lib.runtime.dag import Task, raise_for_failures, run_tasks


def write(name: str) -> list[TableWrite]:
    return [TableWrite("gold", name, f"/lake/gold/{name}", 1, 0)]


def test_independent_tasks_run_at_the_same_time(spark: SparkSession) -> None:
    # Each task waits for the other: run one after the other, the barrier would time out.
    barrier = threading.Barrier(2, timeout=60)

    def meet(name: str) -> list[TableWrite]:
        barrier.wait()
        return write(name)

    outcomes = run_tasks(spark, [Task("a", lambda _: meet("a")), Task("b", lambda _: meet("b"))], max_workers=2)
    assert [(o.name, o.status) for o in outcomes] == [("a", "succeeded"), ("b", "succeeded")]


def test_a_failure_skips_its_dependents_only_and_fails_the_run(spark: SparkSession) -> None:
    order: list[str] = []

    def ok(name: str) -> list[TableWrite]:
        order.append(name)
        return write(name)

    def broken(_: SparkSession) -> list[TableWrite]:
        raise RuntimeError("source unreachable")

    tasks = [
        Task("bronze/a", lambda _: ok("bronze/a")),
        Task("bronze/b", broken),
        Task("silver/a", lambda _: ok("silver/a"), depends_on=("bronze/a",)),
        Task("silver/ab", lambda _: ok("silver/ab"), depends_on=("bronze/a", "bronze/b")),
        Task("gold/ab", lambda _: ok("gold/ab"), depends_on=("silver/ab",)),
    ]
    outcomes = run_tasks(spark, tasks, max_workers=2)
    assert [(o.name, o.status) for o in outcomes] == [
        ("bronze/a", "succeeded"),
        ("bronze/b", "failed"),
        ("silver/a", "succeeded"),
        ("silver/ab", "skipped"),
        ("gold/ab", "skipped"),
    ]
    assert sorted(order) == ["bronze/a", "silver/a"]
    assert outcomes[1].error is not None
    assert outcomes[1].error.startswith("RuntimeError: source unreachable")
    assert outcomes[3].error == "not run: bronze/b did not succeed"
    with pytest.raises(JobFailedError) as caught:
        raise_for_failures(outcomes)
    assert str(caught.value) == (
        "3 of 5 tasks did not succeed:\n"
        "  bronze/b: failed: RuntimeError: source unreachable\n"
        "  silver/ab: skipped: not run: bronze/b did not succeed\n"
        "  gold/ab: skipped: not run: silver/ab did not succeed"
    )


def test_tasks_get_sessions_of_their_own(spark: SparkSession) -> None:
    seen: dict[str, str | None] = {}

    def set_and_read(session: SparkSession, name: str) -> list[TableWrite]:
        session.conf.set("etl.suite.probe", name)
        seen[name] = session.conf.get("etl.suite.probe")
        return []

    run_tasks(spark, [Task("x", lambda s: set_and_read(s, "x")), Task("y", lambda s: set_and_read(s, "y"))], 2)
    assert seen == {"x": "x", "y": "y"}
    assert spark.conf.get("etl.suite.probe", None) is None


def test_bad_graphs_are_refused_before_anything_runs(spark: SparkSession) -> None:
    with pytest.raises(ValueError, match="cycle"):
        run_tasks(spark, [Task("a", lambda _: [], ("b",)), Task("b", lambda _: [], ("a",))], 2)
    with pytest.raises(ValueError, match="unknown c"):
        run_tasks(spark, [Task("a", lambda _: [], ("c",))], 2)
    with pytest.raises(ValueError, match="unique: a"):
        run_tasks(spark, [Task("a", lambda _: []), Task("a", lambda _: [])], 2)
