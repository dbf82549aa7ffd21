"""Shared fixtures: one SparkSession for the whole run, test configuration, real local services.

Tiers follow folders: tests/unit (no Spark), tests/spark (the local session), tests/integration (real
services on loopback, started here and stopped at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, load_config
from tests.retail import RETAIL_TABLES

PROJECT = Path(__file__).resolve().parents[1]
TEST_CONF = PROJECT / "conf" / "test.yaml"
TIERS = ("unit", "spark", "integration")


#: The local services on fixed ports (tests/integration/conftest.py). Under ``pytest -n`` (pytest-xdist, as `make test`
#: runs) every module that uses one runs on the same worker, so that each service starts once per session.
SERVICES = {"kafka", "postgres", "aws", "redis_server"}
#: Other modules run whole on one worker: their module fixtures are built once and their tests keep their order.


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from etl_lib.runtime.stack import active_line, load_stack

    primary = load_stack().default_line
    line = active_line().name
    with_services = {item.module.__name__ for item in items if SERVICES & set(item.fixturenames)}  # type: ignore[attr-defined]
    for item in items:
        tier = Path(str(item.fspath)).relative_to(PROJECT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if line != primary and item.get_closest_marker("primary_line"):
            item.add_marker(pytest.mark.skip(reason=f"runs on the primary line ({primary}) only; this is {line}"))
        module = item.module.__name__  # type: ignore[attr-defined]
        item.add_marker(pytest.mark.xdist_group("services" if module in with_services else module))


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="session")
def suite_config(work_dir: Path) -> SuiteConfig:
    """The test environment, with the lakehouse and service state in temporary folders."""
    return load_config(
        TEST_CONF,
        [
            f"lakehouse.root={work_dir / 'lakehouse'}",
            f"services.work_dir={work_dir / 'services'}",
            f"ml.work_dir={work_dir / 'mlflow'}",
            f"spark.conf.spark.sql.warehouse.dir={work_dir / 'warehouse'}",
        ],
    )


@pytest.fixture(scope="session")
def spark(suite_config: SuiteConfig) -> Iterator[SparkSession]:
    """The one SparkSession of the test run, built by the suite's own builder with conf/test.yaml."""
    from etl_lib.runtime.session import build_session

    session = build_session(suite_config.spark)
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path, suite_config: SuiteConfig) -> SuiteConfig:
    """The test configuration with a lakehouse of this test's own."""
    return suite_config.model_copy(
        update={"lakehouse": suite_config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")})}
    )


@pytest.fixture(scope="session")
def retail_lake(
    spark: SparkSession, suite_config: SuiteConfig, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> dict[str, Any]:
    """A lakehouse the batch layer built from the whole bundled extract, run twice as of 2011-12-10.

    The session lands the whole extract here once: under ``pytest -n`` the first worker to need it builds it and
    the others wait for it and read it. Tests that change it work on a copy (:func:`copied_lake`).
    """
    import fcntl
    import pickle

    if worker_id == "master":  # one process runs every test
        return _build_retail_lake(spark, suite_config, tmp_path_factory.mktemp("retail") / "lake")
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every worker of the run
    with (shared / "retail.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = shared / "retail.pickle"
        if not built.exists():
            built.write_bytes(pickle.dumps(_build_retail_lake(spark, suite_config, shared / "retail" / "lake")))
        result: dict[str, Any] = pickle.loads(built.read_bytes())  # noqa: S301 - written just now by this run
    # This worker's own configuration (its folders for services and models) on the shared lakehouse.
    return {**result, "config": _retail_config(suite_config, shared / "retail" / "lake")}


def _retail_config(suite_config: SuiteConfig, root: Path) -> SuiteConfig:
    from etl_lib.config import validate_config

    data = suite_config.model_dump(mode="json")
    data["lakehouse"]["root"] = str(root)
    data["run"]["process_date"] = "2011-12-10"
    return validate_config(data)


def _build_retail_lake(spark: SparkSession, suite_config: SuiteConfig, root: Path) -> dict[str, Any]:
    import datetime as dt

    from etl_lib.core.run import RunContext
    from etl_lib.io import lakehouse
    from etl_lib.io.portable import duckdb_checksum
    from etl_lib.runtime.runner import run_job

    def context(run_id: str) -> RunContext:
        return RunContext.new(
            "batch_layer", clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC), new_id=lambda: run_id
        )

    config = _retail_config(suite_config, root)
    first = run_job("batch_layer", config, spark, context("run-1"))
    paths = {f"{layer}/{table}": config.lakehouse.table_path(layer, table) for layer, table in RETAIL_TABLES}
    after_first = {name: lakehouse.checksum(spark, path) for name, path in paths.items()}
    by_duckdb = {name: duckdb_checksum(path) for name, path in paths.items()}
    versions = {name: lakehouse.current_version(spark, path) for name, path in paths.items()}
    second = run_job("batch_layer", config, spark, context("run-2"))
    return {
        "config": config,
        "first": first,
        "second": second,
        "after_first": after_first,
        "by_duckdb": by_duckdb,
        "versions": versions,
    }


def copied_lake(retail_lake: dict[str, Any], target: Path) -> SuiteConfig:
    """The retail lakehouse copied to ``target`` (with its checkpoints), and the configuration pointing at it."""
    import shutil

    source: SuiteConfig = retail_lake["config"]
    shutil.copytree(source.lakehouse.root, target)
    return source.model_copy(update={"lakehouse": source.lakehouse.model_copy(update={"root": str(target)})})
