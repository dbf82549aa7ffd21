"""Job ``ingest_files``: land every configured file source in its bronze table, new files only."""

from __future__ import annotations

from pyspark.sql import SparkSession

from etl_lib.config import FileSourceConfig, SuiteConfig
from etl_lib.core.run import JobResult, RunContext
from etl_lib.errors import ConfigError
from etl_lib.jobs.landing import land_files


def ingest_files(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Read the files that landed since the last run of each file source and append them to bronze.

    Args:
        spark: the session.
        config: suite configuration; ``sources`` lists the landing folders.
        context: run id and time stamped on every row.

    Returns:
        One table write per source, with the rows its commits added (0 when no new file landed).

    Raises:
        ConfigError: if no file source is configured.
    """
    files = {name: s for name, s in config.sources.items() if isinstance(s, FileSourceConfig)}
    if not files:
        raise ConfigError(f"{config.source_file}: sources: no file source is configured")
    result = JobResult(job=context.job, run_id=context.run_id)
    for name, source in files.items():
        result.writes.extend(land_files(spark, config, name, source, context))
    return result
