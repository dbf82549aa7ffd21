"""Landing folders of extract files (CSV, JSON lines, Parquet, Excel workbooks), read incrementally as a stream.

Spark's file stream source remembers in its checkpoint which files it has read, so a run picks up only
files that landed since the last one, and the Delta sink commits each batch exactly once.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from etl_lib.config import FileSourceConfig
from etl_lib.io.sources.workbooks import WORKBOOK_FILE, read_workbooks_stream

#: Bronze keeps text formats as landed: every column a string, typed later in silver.
_AS_LANDED_OPTIONS: dict[str, dict[str, str]] = {
    "csv": {"header": "true", "inferSchema": "false", "mode": "PERMISSIVE"},
    "json": {"primitivesAsString": "true", "mode": "PERMISSIVE"},
    "parquet": {},
}


def source_file(source: FileSourceConfig) -> Column:
    """The file a row of :func:`read_files_stream` was read from.

    Spark's hidden ``_metadata`` column of file sources; a workbook's rows carry their file in a column of
    their own (:data:`~etl_lib.io.sources.workbooks.WORKBOOK_FILE`), which :func:`without_source_file` drops
    once it has been read.
    """
    return F.col(WORKBOOK_FILE) if source.format == "xlsx" else F.col("_metadata.file_path")


def without_source_file(frame: DataFrame, source: FileSourceConfig) -> DataFrame:
    """``frame`` without the column that carried a workbook row's file (the others have none)."""
    return frame.drop(WORKBOOK_FILE) if source.format == "xlsx" else frame


def read_options(source: FileSourceConfig) -> dict[str, str]:
    """Reader options: the as-landed defaults of the format, then the source's own."""
    return {**_AS_LANDED_OPTIONS[source.format], **source.options}


def read_files_stream(spark: SparkSession, source: FileSourceConfig) -> DataFrame:
    """A streaming DataFrame over the files of ``source`` (the schema is taken from the files present now)."""
    if source.format == "xlsx":
        return read_workbooks_stream(spark, source)
    options = read_options(source)
    schema = spark.read.format(source.format).options(**options).load(source.path).schema
    reader = spark.readStream.format(source.format).schema(schema).options(**options)
    if source.max_files_per_batch is not None:
        reader = reader.option("maxFilesPerTrigger", str(source.max_files_per_batch))
    return reader.load(source.path)
