"""Reading one sheet of an Excel workbook as bronze keeps it: every cell as text, checked against its header."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from etl_lib.errors import ExtractError
from etl_lib.io.sources.workbooks import cell_text, read_header, read_sheet

pytestmark = pytest.mark.unit


def workbook(*sheets: tuple[str, list[list[Any]]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets:
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        ("", None),
        (" WHITE HEART ", " WHITE HEART "),
        (6, "6"),
        (6.0, "6"),
        (2.55, "2.55"),
        (-1e-05, "-1e-05"),
        (True, "true"),
        (dt.datetime(2010, 12, 1, 8, 26), "2010-12-01 08:26:00"),
        (dt.datetime(2010, 12, 1, 8, 26, 0, 500_000), "2010-12-01 08:26:00.500000"),
        (dt.date(2010, 12, 1), "2010-12-01"),
        (dt.time(8, 26), "08:26:00"),
    ],
)
def test_a_cell_lands_as_the_text_it_shows(value: Any, text: str | None) -> None:
    assert cell_text(value) == text


def test_the_named_sheet_is_read_from_its_header_row_leaving_empty_rows_out() -> None:
    content = workbook(
        ("About", [["Exported by the ERP"]]),
        (
            "Sales",
            [
                ["Sales lines, December"],
                [],
                ["Invoice", "Invoice Date", "Qté", "Customer ID"],
                ["536365", dt.datetime(2010, 12, 1, 8, 26), 6, 17850],
                [None, None, None, None],
                ["536366", dt.datetime(2010, 12, 1, 8, 28), 6.0],
            ],
        ),
    )
    names, rows = read_sheet(content, "Sales", 3, "x.xlsx")
    assert names == ["Invoice", "Invoice Date", "Qté", "Customer ID"]
    assert rows == [
        ["536365", "2010-12-01 08:26:00", "6", "17850"],
        ["536366", "2010-12-01 08:28:00", "6", None],
    ]
    # The header alone reads no row below it: a row past the header is not looked at.
    bad_below = workbook(("Sales", [["a", "b"], [1, 2, 3]]))
    assert read_header(bad_below, "Sales", 1, "x.xlsx") == ["a", "b"]
    with pytest.raises(ExtractError, match="row 2 has a value in column 3"):
        read_sheet(bad_below, "Sales", 1, "x.xlsx")
    # No sheet named: the first, here the notes.
    assert read_sheet(content, None, 1, "x.xlsx") == (["Exported by the ERP"], [])


@pytest.mark.parametrize(
    ("rows", "header_row", "message"),
    [
        ([["a", "b"]], 2, r"x\.xlsx: row 2 \(the header row\) is empty"),
        ([["a", None, "c"]], 1, r"x\.xlsx: the header row has no name in column\(s\) 2"),
        ([["a", "b", "a"]], 1, r"x\.xlsx: the header row names 'a' more than once"),
        ([["a", "b"], [1, 2, 3]], 1, r"x\.xlsx: row 2 has a value in column 3, which has no header"),
    ],
    ids=["empty-header", "unnamed-column", "repeated-name", "value-past-the-header"],
)
def test_a_sheet_that_cannot_be_read_as_configured_is_a_clear_error(
    rows: list[list[Any]], header_row: int, message: str
) -> None:
    with pytest.raises(ExtractError, match=message):
        read_sheet(workbook(("Sales", rows)), "Sales", header_row, "x.xlsx")
    with pytest.raises(ExtractError, match=r"x\.xlsx: no sheet 'Orders' \(it has 'Sales'\)"):
        read_sheet(workbook(("Sales", rows)), "Orders", header_row, "x.xlsx")
