"""The one place a SparkSession is built.

Local sessions get Delta and the connectors from the jar cache ``make setup`` filled; nothing is
downloaded when a session starts. Platform sessions
(AWS Glue, EMR, Databricks) are the platform's own: the suite adds no jars there and only sets the
runtime options the configuration lists.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from etl_lib.config import SparkConfig
from etl_lib.errors import StackError
from etl_lib.runtime.jars import cached_jars, spark_jar_set
from etl_lib.runtime.stack import active_line

log = logging.getLogger(__name__)

#: Table defaults that keep new tables readable by the deltalake package and DuckDB: Databricks, for
#: one, turns deletion vectors on for new tables unless told otherwise.
PORTABLE_TABLE_DEFAULTS = {
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
}

#: Runtime settings every session of the suite gets (a running platform session too), before the config's own.
#: Spark 4 reads text files only in the Unicode charsets and Latin-1 unless told it may use any of Java's:
#: extracts come in Windows code pages too (``encoding: windows-1252``). Spark 3.5 reads them without it.
#: Spark names the class it generates for a whole-stage pipeline after the stage's number in its plan, so the same
#: pipeline numbered otherwise in another plan misses the code cache (below) and is compiled again, then warmed up
#: again by the JIT. A speed-layer micro-batch's plans number the same pipelines differently from batch to batch
#: (the kept ids grow by one local checkpoint a batch): without the number in the name, a steady 5,000 events/s
#: compiled 20 to 40 classes every 10 s instead of 50 to 110 (README, the speed layer).
RUNTIME_DEFAULTS = {
    **PORTABLE_TABLE_DEFAULTS,
    "spark.sql.legacy.javaCharsets": "true",
    "spark.sql.codegen.useIdInClassName": "false",
}

#: What makes a plain Spark session a Delta one.
DELTA_SESSION_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

#: Spark keeps the classes it generates and compiles for query plans in a cache of 100 by default. One micro-batch
#: of the speed layer uses about 116 and one batch-layer run about 400, so with the default every micro-batch
#: compiled its classes again (Janino, then the JIT): 1,160 compilations for 10 micro-batches, against 44 with
#: room for 2,000 (README, where the time goes). Spark reads it once, as the session starts.
CODEGEN_CACHE_CONF = {"spark.sql.codegen.cache.maxEntries": "2000"}

#: The settings a session of the suite starts with, wherever it runs: the platforms' job definitions carry them
#: (a running session cannot take them).
SESSION_CONF = {**DELTA_SESSION_CONF, **CODEGEN_CACHE_CONF}


def local_session_conf(spark: SparkConfig) -> dict[str, str]:
    """Every Spark option a local session of ``spark`` starts with (jars, Delta, then the config's own)."""
    cache = Path(spark.jvm_cache) if spark.jvm_cache else None
    jars = cached_jars(spark_jar_set(active_line()), cache)
    conf = {
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.app.name": spark.app_name,
        **SESSION_CONF,
        **RUNTIME_DEFAULTS,
    }
    conf.update(spark.conf)
    return conf


def build_session(spark: SparkConfig) -> SparkSession:
    """Return the SparkSession described by ``spark``.

    Args:
        spark: the ``spark`` section of the suite configuration.

    Returns:
        A local session with the suite's jars (``session: local``), or the platform's running session
        (``session: platform``).

    Raises:
        StackError: for a local session whose jars were never resolved.
    """
    if spark.session == "platform":
        session = SparkSession.builder.getOrCreate()
        for key, value in {**RUNTIME_DEFAULTS, **spark.conf}.items():
            session.conf.set(key, value)
    else:
        session = start_local_session(spark)
    session.sparkContext.setLogLevel(spark.log_level)
    log.debug("Spark %s session ready (%s)", session.version, spark.session)
    return session


def configure_local_builder(builder: SparkSession.Builder, spark: SparkConfig) -> SparkSession.Builder:
    """``builder`` with the suite's jars and settings, and the configuration's master and options.

    As Delta's ``configure_spark_with_delta_pip`` does for Delta alone: a notebook or script adds its own settings
    to the builder returned and starts it.

    Args:
        builder: a session builder, ``SparkSession.builder`` or one with settings of the caller's.
        spark: the ``spark`` section of the suite configuration (its master, jar cache and options).

    Returns:
        The same builder, configured.

    Raises:
        StackError: when the jar cache ``make setup`` fills holds no jars for the installed Spark line.
    """
    builder = builder.master(spark.master)
    for key, value in local_session_conf(spark).items():
        builder = builder.config(key, value)
    return builder


def start_local_session(spark: SparkConfig) -> SparkSession:
    """A local session of ``spark``: its master, the jars of the cache, Delta, and the configuration's options."""
    # Python workers (UDFs, Python data sources) run the driver's own interpreter and packages
    # unless the environment names another; PySpark reads only the environment for this.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = configure_local_builder(SparkSession.builder, spark).getOrCreate()
    _require_delta(session)
    return session


#: The class Delta's session extension is; a driver without it cannot read or write the suite's tables.
DELTA_EXTENSION_CLASS = "io.delta.sql.DeltaSparkSessionExtension"


def _require_delta(session: SparkSession) -> None:
    """Fail at once, saying how to start it, when the driver JVM cannot load Delta.

    A driver that ``spark-submit`` started before any Python ran has only the jars spark-submit was given: those the
    builder names later reach the executors, not the driver.

    Raises:
        StackError: when Delta's classes are not on the driver's classpath.
    """
    jvm = session.sparkContext._jvm
    assert jvm is not None
    if not jvm.org.apache.spark.util.Utils.classIsLoadable(DELTA_EXTENSION_CLASS):
        session.stop()
        raise StackError(
            "the Spark driver has no Delta classes: spark-submit starts it before the suite can add its jars. "
            "Give spark-submit the properties file make setup wrote: "
            "spark-submit --properties-file .cache/spark-submit.conf jobs/JOB.py ... (or run etl-suite run JOB)"
        )
