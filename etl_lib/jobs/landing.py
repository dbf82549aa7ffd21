"""Landing extracts in bronze: files from a landing folder, rows from a database past their mark."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import FileSourceConfig, JdbcSourceConfig, SuiteConfig
from etl_lib.core.capture import record_read
from etl_lib.core.run import RunContext, TableWrite, run_metadata
from etl_lib.io import lakehouse
from etl_lib.io.sources import bookmarks, jdbc
from etl_lib.io.sources.files import read_files_stream, source_file, without_source_file
from etl_lib.layers.bronze import with_ingestion_metadata


def land_files(
    spark: SparkSession, config: SuiteConfig, name: str, source: FileSourceConfig, context: RunContext
) -> list[TableWrite]:
    """Append the files of ``source`` that landed since its last run to its bronze table."""
    target = config.lakehouse.table_path("bronze", source.table)
    before = lakehouse.current_version(spark, target)
    record_read(f"files:{source.path}", None)
    read = read_files_stream(spark, source).transform(
        with_ingestion_metadata(name, source_file(source), context.run_id, context.run_time)
    )
    landed = without_source_file(read, source)
    _keep_names(spark, target, landed)
    with lakehouse.commit_metadata(spark, run_metadata(context, f"bronze/{source.table}", source=name)):
        lakehouse.append_available_now(
            landed,
            target,
            checkpoint=config.lakehouse.checkpoint_path("bronze", source.table),
            query_name=f"land_{name}",
        )
    return [lakehouse.writes_of_run(spark, "bronze", source.table, target, before, context.run_id)]


def land_jdbc(
    spark: SparkSession, config: SuiteConfig, name: str, source: JdbcSourceConfig, context: RunContext
) -> list[TableWrite]:
    """Append the rows of ``source`` past its committed high-water mark to its bronze table, then bookmark."""
    lake = config.lakehouse
    target = lake.table_path("bronze", source.table)
    marks = lake.table_path("audit", "bookmarks")
    before = lakehouse.current_version(spark, target)
    marks_before = lakehouse.current_version(spark, marks)
    committed = bookmarks.committed_mark(spark, marks, target, name)
    options = jdbc.connection_options(source, name, config)
    increment = jdbc.plan_increment(spark, source, name, committed, options)
    upto = increment.upto if increment is not None else committed
    record_read(f"{source.url}#{source.source_table}", upto if isinstance(upto, int) else None)
    if increment is not None:
        rows = jdbc.read_increment(spark, source, increment, options).transform(
            with_ingestion_metadata(name, F.lit(increment.query), context.run_id, context.run_time)
        )
        _keep_names(spark, target, rows)
        metadata = run_metadata(context, f"bronze/{source.table}", **bookmarks.landing_metadata(name, increment))
        with lakehouse.commit_metadata(spark, metadata):
            lakehouse.append(rows, target)
        committed = increment.upto
    if committed is not None and committed != bookmarks.bookmarked_mark(spark, marks, name):
        # The mark moves only after the rows it covers are committed in bronze.
        with lakehouse.commit_metadata(spark, run_metadata(context, "audit/bookmarks", source=name)):
            bookmarks.record_mark(
                spark,
                marks,
                source=name,
                watermark_column=source.watermark_column,
                mark=committed,
                rows_read=increment.rows if increment else 0,
                query=increment.query if increment else "(recovered from the bronze commit)",
                run_id=context.run_id,
                committed_at=context.run_time,
            )
    return [
        lakehouse.writes_of_run(spark, "bronze", source.table, target, before, context.run_id),
        lakehouse.writes_of_run(spark, "audit", "bookmarks", marks, marks_before, context.run_id),
    ]


def _keep_names(spark: SparkSession, target: str, landed: DataFrame) -> None:
    """Create bronze with Delta's column mapping when the extract names a column as Delta alone cannot store it.

    Bronze keeps an extract as it landed, its columns' names too (``Customer ID``, ``Unit Price (£)``); a table
    that exists already keeps the way it was made.
    """
    if lakehouse.needs_column_mapping(landed.columns):
        lakehouse.ensure_table(spark, target, landed.schema, properties=lakehouse.COLUMN_MAPPING_PROPERTIES)
