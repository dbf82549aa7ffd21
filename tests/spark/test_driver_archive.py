"""A local session's driver maps its classes from the archive `make setup` wrote; one that does not fit is passed over.

Each case starts a driver JVM of its own in a new Python process, as `etl-suite run` does, logs where
each class came from, and writes and reads a Delta table with the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl_lib.config import load_config
from etl_lib.platform import cds
from etl_lib.platform.jvm import spark_jar_set
from etl_lib.platform.paths import default_jvm_cache
from etl_lib.platform.stack import active_line

PROJECT = Path(__file__).resolve().parents[2]
TEST_CONF = PROJECT / "conf" / "test.yaml"
DRIVER_OPTIONS = "spark.driver.extraJavaOptions"

PROBE = """
import json, os, sys
from etl_lib.config import load_config
from etl_lib.platform.session import build_session

conf, table, *overrides = sys.argv[1:]
spark = build_session(load_config(conf, overrides).spark)
spark.range(10).write.format("delta").save(table)
rows = spark.read.format("delta").load(table).count()
management = spark.sparkContext._jvm.java.lang.management.ManagementFactory
arguments = management.getRuntimeMXBean().getInputArguments()
collectors = [bean.getName() for bean in management.getGarbageCollectorMXBeans()]
print(json.dumps({"rows": rows, "java_options": list(arguments), "collectors": collectors,
                  "spark_conf_dir": os.environ.get("SPARK_CONF_DIR")}))
spark.stop()
"""


def configured_options() -> str:
    """The driver's Java options conf/test.yaml names."""
    return load_config(TEST_CONF).spark.conf.get(DRIVER_OPTIONS, "")


def start_driver(tmp_path: Path, *overrides: str) -> tuple[dict[str, object], str, list[str]]:
    """Run the probe; return what it printed, its stderr and the class-loading log lines of its driver."""
    class_log = tmp_path / "classes.log"
    # The configuration's own driver options (its collector) stay: the archive must map with them.
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, str(TEST_CONF), str(tmp_path / "table"),
         f"spark.conf.spark.sql.warehouse.dir={tmp_path / 'warehouse'}",
         f"spark.conf.{DRIVER_OPTIONS}={configured_options()} -Xlog:class+load=info:file={class_log}", *overrides],
        capture_output=True, text=True, timeout=300, check=False,
        env={key: value for key, value in os.environ.items() if key != "PYSPARK_GATEWAY_PORT"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return report, completed.stderr, class_log.read_text(encoding="utf-8").splitlines()


def from_archive(classes: list[str]) -> int:
    """Classes the driver mapped from the dynamic archive (the top layer above the JDK's own)."""
    return sum("source: shared objects file (top)" in line for line in classes)


def archive_options(report: dict[str, object]) -> list[str]:
    return [option for option in report["java_options"] if "SharedArchiveFile" in option]  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_driver_maps_the_suite_classes_from_the_archive_setup_wrote(tmp_path: Path) -> None:
    archive = cds.archive_path()
    assert archive is not None
    assert archive.is_file(), "make setup writes the class-data archive"

    report, _, classes = start_driver(tmp_path)

    assert report["rows"] == 10
    assert archive_options(report) == [f"-XX:SharedArchiveFile={archive}"]
    # Spark SQL, Delta and py4j came from the archive; the variable is put back once the driver runs.
    mapped = [line for line in classes if "source: shared objects file (top)" in line]
    assert len(mapped) > 5_000
    for name in ("org.apache.spark.sql.SparkSession ", "org.apache.spark.sql.delta.DeltaLog ", "py4j.GatewayServer "):
        assert any(line.split("] ", 1)[-1].startswith(name) for line in mapped), name
    assert report["spark_conf_dir"] is None
    # ... with the driver options the configuration names (conf/test.yaml: the parallel collector, not G1).
    assert set(configured_options().split()) <= set(report["java_options"])  # type: ignore[arg-type]
    assert sorted(report["collectors"]) == ["PS MarkSweep", "PS Scavenge"]


@pytest.mark.slow
def test_turned_off_the_driver_starts_as_usual(tmp_path: Path) -> None:
    report, _, classes = start_driver(tmp_path, "spark.class_sharing=false")

    assert report["rows"] == 10
    assert archive_options(report) == []
    assert from_archive(classes) == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["another class path", "not an archive"])
def test_an_archive_that_does_not_fit_is_passed_over_quietly(tmp_path: Path, kind: str) -> None:
    # A cache of its own, with the resolved jars: its empty configuration folder is another path than
    # the one the real archive was written with, so the JVM must refuse that archive.
    cache = tmp_path / "cache"
    cache.mkdir()
    jar_set = spark_jar_set(active_line()).name
    (cache / jar_set).symlink_to(default_jvm_cache() / jar_set, target_is_directory=True)
    archive = cds.archive_path(cache)
    real = cds.archive_path()
    assert archive is not None
    assert real is not None
    assert real.is_file()
    archive.parent.mkdir(parents=True)
    if kind == "another class path":
        archive.symlink_to(real)
    else:
        archive.write_bytes(b"not a class-data archive\n" * 1000)

    report, stderr, classes = start_driver(tmp_path, f"spark.jvm_cache={cache}")

    assert report["rows"] == 10
    assert archive_options(report) == [f"-XX:SharedArchiveFile={archive}"]
    assert from_archive(classes) == 0
    assert "cds" not in stderr.lower(), stderr
    assert "shared" not in stderr.lower(), stderr
