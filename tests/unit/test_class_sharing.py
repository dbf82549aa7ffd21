"""When a local session's driver starts from the class-data archive, and with what options (no JVM here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from etl_lib.config import SparkConfig
from etl_lib.platform import cds
from etl_lib.platform.jvm import MANIFEST, spark_jar_set
from etl_lib.platform.stack import active_line


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A JVM cache with a resolved jar set (its manifest only) and a JDK of its own, in a clean environment."""
    jars = tmp_path / "cache" / spark_jar_set(active_line()).name
    jars.mkdir(parents=True)
    (jars / MANIFEST).write_text('{"fingerprint": "jars-1", "jars": []}', encoding="utf-8")
    java_home = tmp_path / "jdk"
    java_home.mkdir()
    (java_home / "release").write_text('JAVA_VERSION="17.0.15"\n', encoding="utf-8")
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    for name in ("PYSPARK_GATEWAY_PORT", "SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def config(cache: Path, **changes: object) -> SparkConfig:
    return SparkConfig(session="local", jvm_cache=str(cache), **changes)  # type: ignore[arg-type]


def present(cache: Path) -> Path:
    archive = cds.archive_path(cache)
    assert archive is not None
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"archive")
    return archive


def test_a_present_archive_starts_the_driver_from_it_quietly_with_an_empty_configuration_folder(cache: Path) -> None:
    archive = present(cache)

    sharing = cds.driver_sharing(config(cache))

    assert sharing == cds.DriverSharing(
        (f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"),
        cache / "cds" / "conf",
    )
    assert sharing.conf_dir.is_dir()
    assert list(sharing.conf_dir.iterdir()) == []


def test_the_archive_name_follows_the_jdk_and_the_jar_set(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cds.archive_path(cache)
    java_home = Path(str(cache.parent / "jdk"))
    (java_home / "release").write_text('JAVA_VERSION="17.0.16"\n', encoding="utf-8")
    other_jdk = cds.archive_path(cache)
    (cache / spark_jar_set(active_line()).name / MANIFEST).write_text('{"fingerprint": "jars-2"}', encoding="utf-8")
    other_jars = cds.archive_path(cache)

    assert first is not None
    assert first.name.startswith(f"driver-{active_line().name}-")
    assert len({first, other_jdk, other_jars}) == 3
    assert cds.archive_path(cache) == other_jars  # the same inputs, the same name


@pytest.mark.parametrize(
    ("variable", "reason"),
    [
        ("PYSPARK_GATEWAY_PORT", "spark-submit started the driver"),
        ("SPARK_CONF_DIR", "a configuration folder of its own"),
        ("HADOOP_CONF_DIR", "a folder on the driver's class path"),
    ],
)
def test_an_environment_that_starts_or_shapes_the_driver_itself_gets_no_archive(
    cache: Path, monkeypatch: pytest.MonkeyPatch, variable: str, reason: str
) -> None:
    present(cache)
    monkeypatch.setenv(variable, str(cache))

    assert cds.driver_sharing(config(cache)) is None, reason


def test_no_archive_when_turned_off_missing_or_without_resolved_jars(cache: Path) -> None:
    assert cds.driver_sharing(config(cache)) is None  # not written yet
    present(cache)
    assert cds.driver_sharing(config(cache, class_sharing=False)) is None
    shutil.rmtree(cache / spark_jar_set(active_line()).name)
    assert cds.archive_path(cache) is None
    assert cds.driver_sharing(config(cache)) is None


def test_the_archive_options_follow_the_drivers_own_java_options() -> None:
    options = ("-XX:SharedArchiveFile=/a b/x.jsa", "-Xshare:auto")

    assert cds.with_java_options({"spark.app.name": "x"}, options) == {
        "spark.app.name": "x",
        "spark.driver.extraJavaOptions": '"-XX:SharedArchiveFile=/a b/x.jsa" -Xshare:auto',
    }
    assert cds.with_java_options({"spark.driver.extraJavaOptions": "-Dmine=1 "}, options[1:]) == {
        "spark.driver.extraJavaOptions": "-Dmine=1 -Xshare:auto"
    }


def test_configuration_the_suite_did_not_write_beside_spark_defaults_keeps_the_driver_as_usual(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from etl_lib.platform.jvm import write_spark_defaults

    present(cache)
    home = tmp_path / "pyspark"
    write_spark_defaults([], home)
    monkeypatch.setattr(cds, "_pyspark_home", lambda: home)
    assert cds.driver_sharing(config(cache)) is not None  # the suite's own spark-defaults.conf is named in the session

    (home / "conf" / "log4j2.properties").write_text("rootLogger.level = info\n", encoding="utf-8")
    assert cds.driver_sharing(config(cache)) is None
