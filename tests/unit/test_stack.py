from __future__ import annotations

import re
from pathlib import Path

import pytest

from etl_lib.errors import StackError
from etl_lib.runtime.jars import artifact_name, deequ_jar_set, kafka_broker_jar_set, spark_jar_set
from etl_lib.runtime.stack import load_stack

PROJECT = Path(__file__).resolve().parents[2]


def lock_pins(line: str) -> dict[str, str]:
    pins = {}
    for raw in (PROJECT / "requirements" / f"{line}.lock").read_text().splitlines():
        if raw and not raw.startswith("#"):
            name, _, version = raw.partition("==")
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    return pins


def test_primary_line_is_spark_41_with_delta_42_on_scala_213() -> None:
    stack = load_stack()
    line = stack.line(stack.default_line)
    assert (line.name, line.pyspark, line.delta_spark, line.scala_binary) == ("spark41", "4.1.1", "4.2.0", "2.13")
    assert line.delta_artifact == "delta-spark_4.1_2.13"
    assert line.spark_minor == "4.1"


def test_compatibility_line_is_spark_356_with_delta_332_on_scala_212() -> None:
    line = load_stack().line("spark35")
    assert (line.pyspark, line.delta_spark, line.scala_binary, line.glue_version) == ("3.5.6", "3.3.2", "2.12", "5.1")


def test_lock_of_each_locked_line_matches_the_stack() -> None:
    locked = sorted(path.stem for path in (PROJECT / "requirements").glob("*.lock"))
    assert "spark41" in locked
    for name in locked:
        line = load_stack().line(name)
        pins = lock_pins(name)
        assert pins["pyspark"] == line.pyspark
        assert pins["delta-spark"] == line.delta_spark


def test_installed_spark_is_the_locked_one() -> None:
    import delta
    import pyspark

    line = load_stack().line_for_spark(pyspark.__version__)
    assert lock_pins(line.name)["delta-spark"] == line.delta_spark
    assert Path(delta.__file__).is_file()


def test_unknown_line_and_unpinned_spark_are_errors() -> None:
    with pytest.raises(StackError, match=r"unknown Spark line 'spark9'; stack.toml declares: spark35, spark41"):
        load_stack().line("spark9")
    with pytest.raises(StackError, match=r"Spark 9\.9\.9 is not a pinned line"):
        load_stack().line_for_spark("9.9.9")


def test_maven_properties_come_from_the_stack() -> None:
    line = load_stack().line("spark41")
    assert spark_jar_set(line).properties == {
        "delta.artifactId": "delta-spark_4.1_2.13",
        "delta.version": "4.2.0",
        "scala.binary": "2.13",
        "spark.version": "4.1.1",
        "kafka.connector.version": "4.1.3",
        "kafka.token.provider.version": "4.1.1",
        "postgresql.version": load_stack().jvm.postgresql_jdbc,
        "hadoop.aws.version": "3.4.2",
        "aws.sdk.v2.version": load_stack().jvm.aws_sdk_v2,
    }
    assert kafka_broker_jar_set().properties["kafka.version"] == load_stack().jvm.kafka_broker


def test_no_version_is_written_in_the_poms() -> None:
    for pom in (PROJECT / "jvm").glob("*/pom.xml"):
        text = pom.read_text()
        dependencies = re.findall(r"<dependency>(.*?)</dependency>", text, flags=re.S)
        # A dependency without a version takes it from an imported BOM (whose version is a property).
        dependency_versions = [v for d in dependencies for v in re.findall(r"<version>(.*?)</version>", d)]
        assert dependency_versions, pom
        assert all(v.startswith("${") for v in dependency_versions), (pom, dependency_versions)


@pytest.mark.parametrize(
    ("jar", "artifact"),
    [
        ("delta-spark_4.1_2.13-4.2.0.jar", "delta-spark_4.1_2.13"),
        ("zstd-jni-1.5.7-3.jar", "zstd-jni"),
        ("kafka-clients-3.9.1.jar", "kafka-clients"),
        ("scala-parallel-collections_2.13-1.2.0.jar", "scala-parallel-collections_2.13"),
        ("unitycatalog-client-0.4.1.jar", "unitycatalog-client"),
        ("RoaringBitmap-1.3.0.jar", "RoaringBitmap"),
    ],
)
def test_artifact_names_drop_the_version(jar: str, artifact: str) -> None:
    assert artifact_name(jar) == artifact


def test_deequ_is_resolved_only_for_a_line_with_a_deequ_build() -> None:
    spark35, spark41 = load_stack().line("spark35"), load_stack().line("spark41")
    deequ = deequ_jar_set(spark35)
    assert deequ is not None
    assert deequ.properties == {"deequ.version": spark35.deequ, "scala.binary": "2.12"}
    assert (deequ.pom, deequ.name) == ("deequ/pom.xml", "deequ-spark35")
    assert str(spark35.deequ).endswith(f"-spark-{spark35.spark_minor}")
    assert deequ_jar_set(spark41) is None


def test_spark_submit_properties_list_the_session_jars_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Deequ's jars are resolved on its line but stay off spark-submit's classpath, which needs Delta's.
    from etl_lib.deploy import jvm

    spark35 = load_stack().line("spark35")
    written: list[list[Path]] = []
    monkeypatch.setattr(jvm, "active_line", lambda: spark35)
    monkeypatch.setattr(jvm, "resolve", lambda jar_set, force=False: [Path(f"/cache/{jar_set.name}/a.jar")])
    monkeypatch.setattr(jvm, "write_submit_properties", lambda jars: written.append(jars) or Path("spark-submit.conf"))
    assert jvm.main(["resolve", "--line", "spark35"]) == 0
    assert written == [[Path("/cache/spark-spark35/a.jar")]]
