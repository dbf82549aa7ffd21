"""The pinned technology stack: Spark lines and JVM artifact versions, read from ``stack.toml``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from etl_lib.errors import StackError


@dataclass(frozen=True)
class SparkLine:
    """One Spark release train and the Delta/Scala versions that go with it."""

    name: str
    summary: str
    pyspark: str
    delta_spark: str
    scala_binary: str
    delta_artifact: str
    kafka_connector: str
    #: The Kafka token provider, Spark's own version where Maven Central serves it.
    kafka_token_provider: str
    hadoop_aws: str
    glue_version: str
    #: Amazon Deequ for the peers benchmark (a version published for this Spark and Scala), if there is one.
    deequ: str | None = None

    @property
    def spark_minor(self) -> str:
        """``"4.1"`` for Spark 4.1.1."""
        return ".".join(self.pyspark.split(".")[:2])


@dataclass(frozen=True)
class JvmVersions:
    """Versions of JVM artifacts that do not depend on the Spark line."""

    postgresql_jdbc: str
    kafka_broker: str
    kafka_broker_scala: str
    log4j: str
    aws_sdk_v2: str


@dataclass(frozen=True)
class Stack:
    """Everything ``stack.toml`` declares."""

    default_line: str
    lines: dict[str, SparkLine]
    jvm: JvmVersions

    def line(self, name: str) -> SparkLine:
        """Return the line called ``name``.

        Raises:
            StackError: if no such line is declared.
        """
        try:
            return self.lines[name]
        except KeyError:
            known = ", ".join(sorted(self.lines))
            raise StackError(f"unknown Spark line {name!r}; stack.toml declares: {known}") from None

    def line_for_spark(self, spark_version: str) -> SparkLine:
        """Return the line whose pinned pyspark version is ``spark_version``.

        Raises:
            StackError: if the installed Spark is not one the suite pins.
        """
        for line in self.lines.values():
            if line.pyspark == spark_version:
                return line
        pinned = ", ".join(f"{line.name}={line.pyspark}" for line in self.lines.values())
        raise StackError(
            f"Spark {spark_version} is not a pinned line (pinned: {pinned}); "
            "run `make setup` (or `make setup LINE=<line>`) to install one"
        )


@cache
def load_stack() -> Stack:
    """Read ``stack.toml`` shipped inside the package."""
    text = resources.files("etl_lib.runtime").joinpath("stack.toml").read_text(encoding="utf-8")
    raw = tomllib.loads(text)
    lines = {name: SparkLine(name=name, **fields) for name, fields in raw["lines"].items()}
    stack = Stack(default_line=raw["default_line"], lines=lines, jvm=JvmVersions(**raw["jvm"]))
    stack.line(stack.default_line)  # the default must name a declared line
    return stack


def installed_spark_version() -> str:
    """Version of the pyspark package importable in this interpreter."""
    import pyspark

    return pyspark.__version__


def active_line() -> SparkLine:
    """The line matching the installed pyspark."""
    return load_stack().line_for_spark(installed_spark_version())
