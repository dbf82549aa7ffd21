"""Shared fixtures: one SparkSession for the whole run, test configuration, real local services.

Tiers follow folders: tests/unit (no Spark), tests/spark (the local session), tests/integration (real
services on loopback, started here and stopped at the end).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from etl_lib.config import SuiteConfig, load_config

PROJECT = Path(__file__).resolve().parents[1]
TEST_CONF = PROJECT / "conf" / "test.yaml"
TIERS = ("unit", "spark", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(PROJECT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


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
            f"spark.conf.spark.sql.warehouse.dir={work_dir / 'warehouse'}",
        ],
    )


@pytest.fixture(scope="session")
def spark(suite_config: SuiteConfig) -> Iterator[SparkSession]:
    """The one SparkSession of the test run, built by the suite's own builder with conf/test.yaml."""
    from etl_lib.platform.session import build_session

    session = build_session(suite_config.spark)
    yield session
    session.stop()


@pytest.fixture
def lake(tmp_path: Path, suite_config: SuiteConfig) -> SuiteConfig:
    """The test configuration with a lakehouse of this test's own."""
    return suite_config.model_copy(
        update={"lakehouse": suite_config.lakehouse.model_copy(update={"root": str(tmp_path / "lakehouse")})}
    )
