"""Excel workbooks (``.xlsx``) in a landing folder, read incrementally as a stream.

Spark's binary file source lists the workbooks and remembers in the checkpoint which ones it has read,
as it does for CSV; openpyxl (the reader pandas uses for ``.xlsx``) reads the rows of one sheet of each
new workbook in the task that holds it. Every cell lands as text, as a CSV's would: typing is silver's.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType, TimestampType

from etl_lib.config import FileSourceConfig
from etl_lib.errors import ExtractError

if TYPE_CHECKING:
    import pandas as pd

#: The column of a workbook's rows that names the file they came from (dropped once bronze has it).
WORKBOOK_FILE = "_workbook_file"
_PATTERN = "*.xlsx"
#: The columns of Spark's ``binaryFile`` source (a stream of it must be given them).
_BINARY_FILE = StructType(
    [
        StructField("path", StringType(), False),
        StructField("modificationTime", TimestampType(), False),
        StructField("length", LongType(), False),
        StructField("content", BinaryType(), True),
    ]
)


def cell_text(value: Any) -> str | None:
    """A cell's value as the text bronze keeps: what the cell shows, dates in ISO 8601, empty as NULL.

    Excel keeps a date as a number formatted as a date; openpyxl gives it as a datetime, written here as
    ``2010-12-01 08:26:00`` (Spark reads that as a timestamp without a format). A whole number stored as
    a float (``6.0``) is written ``6``.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    text = str(value)
    return text if text != "" else None


def _sheet(workbook: Any, sheet: str | None, where: str) -> Any:
    if sheet is None:
        return workbook.worksheets[0]
    if sheet not in workbook.sheetnames:
        raise ExtractError(f"{where}: no sheet {sheet!r} (it has {', '.join(map(repr, workbook.sheetnames))})")
    return workbook[sheet]


def _header(cells: Sequence[Any] | None, where: str, header_row: int) -> list[str]:
    names = [cell_text(cell) for cell in (cells or ())]
    while names and names[-1] is None:
        names.pop()
    if not names:
        raise ExtractError(f"{where}: row {header_row} (the header row) is empty")
    blank = [str(index + 1) for index, name in enumerate(names) if name is None]
    if blank:
        raise ExtractError(f"{where}: the header row has no name in column(s) {', '.join(blank)}")
    named = [name for name in names if name is not None]  # all of them, as checked just above
    repeated = sorted({name for name in named if named.count(name) > 1})
    if repeated:
        raise ExtractError(f"{where}: the header row names {', '.join(map(repr, repeated))} more than once")
    return named


def read_sheet(content: bytes, sheet: str | None, header_row: int, where: str) -> tuple[list[str], list[list[Any]]]:
    """The header and the data rows (as text) of one sheet of a workbook.

    Rows with no value at all (Excel keeps formatted empty rows) are left out; a value in a column the
    header does not name is an error, not a silently dropped cell.

    Args:
        content: the ``.xlsx`` file's bytes.
        sheet: the sheet's name; None for the first sheet.
        header_row: the row (counted from 1) that names the columns; the rows above it are skipped.
        where: the file, for error messages.
    """
    return _read(content, sheet, header_row, where, header_only=False)


def read_header(content: bytes, sheet: str | None, header_row: int, where: str) -> list[str]:
    """The header of one sheet of a workbook, checked as :func:`read_sheet` checks it; no row below it is read."""
    names, _ = _read(content, sheet, header_row, where, header_only=True)
    return names


def _read(
    content: bytes, sheet: str | None, header_row: int, where: str, header_only: bool
) -> tuple[list[str], list[list[Any]]]:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    try:
        rows = _sheet(workbook, sheet, where).iter_rows(min_row=header_row, values_only=True)
        names = _header(next(rows, None), where, header_row)
        width = len(names)
        data: list[list[Any]] = []
        for number, cells in enumerate(() if header_only else rows, start=header_row + 1):
            values = [cell_text(cell) for cell in cells]
            if all(value is None for value in values):
                continue
            extra = [index + 1 for index, value in enumerate(values[width:], start=width) if value is not None]
            if extra:
                raise ExtractError(f"{where}: row {number} has a value in column {extra[0]}, which has no header")
            data.append((values + [None] * width)[:width])
        return names, data
    finally:
        workbook.close()


def _first_workbook(spark: SparkSession, source: FileSourceConfig) -> tuple[str, bytes]:
    # The paths alone first: Spark reads a file's content only where it is selected.
    files = spark.read.format("binaryFile").option("pathGlobFilter", _PATTERN).load(source.path)
    [(first,)] = files.agg(F.min("path")).collect()
    if first is None:
        raise ExtractError(f"{source.path}: no {_PATTERN} workbook to take the columns from")
    [(content,)] = spark.read.format("binaryFile").load(first).select("content").collect()
    return str(first), bytes(content)


def read_workbooks_stream(spark: SparkSession, source: FileSourceConfig) -> DataFrame:
    """A streaming DataFrame of the rows of ``source``'s workbooks, each with :data:`WORKBOOK_FILE`.

    The columns are those of the first workbook's header (by name, every one a string), as a CSV source takes
    its schema from the files present when the run starts. A later workbook may leave a column out (NULL) or
    order them otherwise; a column the first did not have fails the run with the workbook's name.
    """
    path, content = _first_workbook(spark, source)
    names = read_header(content, source.sheet, source.header_row, path)
    if WORKBOOK_FILE in names:
        raise ExtractError(f"{path}: a column may not be named {WORKBOOK_FILE}")
    schema = StructType([StructField(name, StringType()) for name in [*names, WORKBOOK_FILE]])
    sheet, header_row = source.sheet, source.header_row

    def rows(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        for batch in batches:
            for file, data in zip(batch["path"], batch["content"], strict=True):
                found, values = read_sheet(bytes(data), sheet, header_row, str(file))
                unknown = [name for name in found if name not in names]
                if unknown:
                    raise ExtractError(
                        f"{file}: column(s) {', '.join(map(repr, unknown))} are not in the source's first workbook"
                        f" ({', '.join(map(repr, names))}); land it in a source of its own"
                    )
                frame = pd.DataFrame(values, columns=found, dtype=object).reindex(columns=names)
                frame[WORKBOOK_FILE] = str(file)
                yield frame.astype(object).where(frame.notna(), None)

    reader = spark.readStream.format("binaryFile").schema(_BINARY_FILE).option("pathGlobFilter", _PATTERN)
    if source.max_files_per_batch is not None:
        reader = reader.option("maxFilesPerTrigger", str(source.max_files_per_batch))
    return reader.load(source.path).select("path", "content").mapInPandas(rows, schema)
