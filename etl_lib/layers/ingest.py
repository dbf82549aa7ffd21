"""Job ``ingest_files``: land every configured file source in its bronze table, new files only."""

from __future__ import annotations

from pyspark.sql import SparkSession

from etl_lib import lakehouse
from etl_lib.config import SuiteConfig
from etl_lib.errors import ConfigError
from etl_lib.layers.bronze import with_ingestion_metadata
from etl_lib.platform.runtime import JobResult, RunContext, TableWrite
from etl_lib.sources.files import read_files_stream, source_file


def ingest_files(spark: SparkSession, config: SuiteConfig, context: RunContext) -> JobResult:
    """Read the files that landed since the last run of each source and append them to bronze.

    Args:
        spark: the session.
        config: suite configuration; ``sources`` lists the landing folders.
        context: run id and time stamped on every row.

    Returns:
        One table write per source, with the rows its commits added (0 when no new file landed).

    Raises:
        ConfigError: if no file source is configured.
    """
    if not config.sources:
        raise ConfigError(f"{config.source_file}: sources: no file source is configured")
    result = JobResult(job=context.job, run_id=context.run_id)
    for name, source in config.sources.items():
        target = config.lakehouse.table_path("bronze", source.table)
        before = lakehouse.current_version(spark, target)
        landed = read_files_stream(spark, source).transform(
            with_ingestion_metadata(name, source_file(), context.run_id, context.run_time)
        )
        lakehouse.append_available_now(
            landed,
            target,
            checkpoint=config.lakehouse.checkpoint_path("bronze", source.table),
            query_name=f"ingest_{name}",
        )
        commits = lakehouse.commits_since(spark, target, before)
        result.writes.append(
            TableWrite(
                layer="bronze",
                table=source.table,
                path=target,
                rows_written=sum(commit.rows_written for commit in commits),
                version=commits[-1].version if commits else before,
            )
        )
    return result
