"""The suite's JVM jars as a local session finds them: the jar sets of a Spark line and their cache.

Setup fills the cache (``python -m etl_lib.deploy.jvm resolve``); sessions read it offline.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from etl_lib.config.paths import default_jvm_cache
from etl_lib.errors import StackError
from etl_lib.runtime.stack import SparkLine, load_stack

MANIFEST = "manifest.json"
_JAR_NAME = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^-]*(?:-\d+)?(?:-[A-Za-z]\w*)?)\.jar$")


@dataclass(frozen=True)
class JarSet:
    """A named group of jars Maven resolves from one pom with a set of properties."""

    name: str
    pom: str
    properties: dict[str, str]
    #: Drop jars whose artifact the pyspark distribution already ships (Spark's own copy wins anyway,
    #: and two versions of one library on a classpath is a bug waiting to happen).
    skip_spark_provided: bool


def spark_jar_set(line: SparkLine) -> JarSet:
    """The jars a local SparkSession of ``line`` adds to what pyspark ships."""
    jvm = load_stack().jvm
    return JarSet(
        name=f"spark-{line.name}",
        pom="spark/pom.xml",
        properties={
            "delta.artifactId": line.delta_artifact,
            "delta.version": line.delta_spark,
            "scala.binary": line.scala_binary,
            "spark.version": line.pyspark,
            "kafka.connector.version": line.kafka_connector,
            "kafka.token.provider.version": line.kafka_token_provider,
            "postgresql.version": jvm.postgresql_jdbc,
            "hadoop.aws.version": line.hadoop_aws,
            "aws.sdk.v2.version": jvm.aws_sdk_v2,
        },
        skip_spark_provided=True,
    )


def kafka_broker_jar_set() -> JarSet:
    """The classpath of the local KRaft broker."""
    jvm = load_stack().jvm
    return JarSet(
        name="kafka-broker",
        pom="kafka-broker/pom.xml",
        properties={
            "kafka.version": jvm.kafka_broker,
            "kafka.scala.binary": jvm.kafka_broker_scala,
            "log4j.version": jvm.log4j,
        },
        skip_spark_provided=False,
    )


def deequ_jar_set(line: SparkLine) -> JarSet | None:
    """Amazon Deequ for the quality peers benchmark where the line has a Deequ build (not on the suite's classpath)."""
    if line.deequ is None:
        return None
    return JarSet(
        name=f"deequ-{line.name}",
        pom="deequ/pom.xml",
        properties={"deequ.version": line.deequ, "scala.binary": line.scala_binary},
        skip_spark_provided=True,
    )


def artifact_name(jar_file: str) -> str:
    """``delta-storage-4.2.0.jar`` -> ``delta-storage``."""
    match = _JAR_NAME.match(jar_file)
    return match.group("artifact") if match else jar_file.removesuffix(".jar")


def _pyspark_jar_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def _fingerprint(jar_set: JarSet, pom_text: str) -> str:
    payload = json.dumps({"pom": pom_text, "properties": jar_set.properties}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _read_manifest(directory: Path) -> dict[str, object] | None:
    path = directory / MANIFEST
    if not path.is_file():
        return None
    data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return data


def cached_jars(jar_set: JarSet, cache_dir: Path | None = None) -> list[Path]:
    """Jars of ``jar_set`` from the cache, without running Maven.

    Raises:
        StackError: if the set was never resolved or a jar of its manifest is missing.
    """
    directory = (cache_dir or default_jvm_cache()) / jar_set.name
    manifest = _read_manifest(directory)
    if manifest is None:
        raise StackError(f"JVM artifacts '{jar_set.name}' are not resolved in {directory}; run `make setup` first")
    jar_names = manifest.get("jars")
    if not isinstance(jar_names, list):
        raise StackError(f"{directory / MANIFEST} has no 'jars' list; run `make setup` again")
    jars = [directory / str(name) for name in jar_names]
    missing = [jar.name for jar in jars if not jar.is_file()]
    if missing:
        raise StackError(f"{directory} lacks {', '.join(missing)}; run `make setup` again")
    return jars
