"""The bundled extract written the way other systems export it: renamed columns, text dates, code pages, Excel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from etl_lib.services.postgres import ORDER_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "data" / "online_retail" / "online_retail.parquet"

#: Column names as an ERP exports them: spaces, punctuation, a currency sign, an accent (bundled name -> export's).
EXPORTED_NAMES = {
    "InvoiceNo": "Invoice",
    "StockCode": "StockCode",
    "Description": "Description",
    "Quantity": "Qté",
    "InvoiceDate": "Invoice Date",
    "UnitPrice": "Unit Price (£)",
    "CustomerID": "Customer ID",
    "Country": "Country",
}
#: The order-lines entity's columns, mapped to the export's names (a source's ``columns``).
ENTITY_COLUMNS = {entity: EXPORTED_NAMES[bundled] for entity, bundled in ORDER_COLUMNS.items()}


def bundled_lines() -> pd.DataFrame:
    """The bundled extract with the export's column names (customer ids stay whole numbers, not floats)."""
    frame = pq.read_table(DATA).to_pandas()
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    return frame.rename(columns=EXPORTED_NAMES)


def write_csv(lines: pd.DataFrame, path: Path, date_format: str, encoding: str, sep: str = ",") -> None:
    """``lines`` as a CSV export: dates as text in ``date_format`` (strftime), quotes doubled as RFC 4180 has it."""
    text = lines.copy()
    text["Invoice Date"] = _dates(text["Invoice Date"], date_format)
    text.to_csv(path, index=False, sep=sep, encoding=encoding)


def _dates(moments: pd.Series, date_format: str) -> pd.Series:
    if date_format == "us":  # 12/1/2010 8:26 AM: no leading zeros, a 12-hour clock
        hour = moments.dt.hour % 12
        hour = hour.where(hour != 0, 12)
        return (
            moments.dt.month.astype(str)
            + "/"
            + moments.dt.day.astype(str)
            + "/"
            + moments.dt.year.astype(str)
            + " "
            + hour.astype(str)
            + ":"
            + moments.dt.strftime("%M %p")
        )
    return moments.dt.strftime(date_format)


def write_workbook(
    lines: pd.DataFrame, path: Path, sheet: str = "Transactions", title_rows: Sequence[Sequence[Any]] = ()
) -> None:
    """``lines`` as an ``.xlsx`` workbook: a notes sheet first, then ``sheet`` with ``title_rows`` above the header.

    Dates are Excel dates (date-formatted numbers), numbers are numbers and an empty value an empty cell.
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    notes = workbook.create_sheet("About")
    notes.append(["Sales lines exported from the ERP"])
    notes.append(["Rows", len(lines)])
    data = workbook.create_sheet(sheet)
    for row in title_rows:
        data.append(list(row))
    data.append(list(lines.columns))
    for values in lines.itertuples(index=False):
        data.append([None if pd.isna(value) else _cell(value) for value in values])
    workbook.save(path)


def _cell(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if hasattr(value, "item") else value
