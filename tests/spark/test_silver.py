from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from etl_lib.config import EntityConfig
from etl_lib.layers import silver

ENTITY = EntityConfig(
    columns={"invoice_no": "string", "quantity": "int", "invoice_date": "timestamp", "unit_price": "decimal(12,3)"},
    required=["invoice_no", "quantity", "invoice_date"],
)
MAPPING = {"invoice_no": "Invoice", "quantity": "Qty", "invoice_date": "When", "unit_price": "Price"}
AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_to_entity_types_maps_and_records_what_failed(spark: SparkSession) -> None:
    extract = spark.createDataFrame(
        [
            ("536365", "6", "01/12/2010 08:26", "2.55", "erp"),
            ("536366", "six", "01/12/2010 08:28", "1.85", "erp"),
            ("  ", "2", "not a date", None, "erp"),
        ],
        "Invoice STRING, Qty STRING, `When` STRING, Price STRING, _source STRING",
    )
    typed = extract.transform(silver.to_entity(ENTITY, MAPPING, {"invoice_date": "dd/MM/yyyy HH:mm"}))

    expected = spark.createDataFrame(
        [
            (
                "536365",
                6,
                dt.datetime(2010, 12, 1, 8, 26),
                "2.550",
                [],
                None,  # a good row does not carry its extract row: only rejects keep it
                "erp",
            ),
            (
                "536366",
                None,
                dt.datetime(2010, 12, 1, 8, 28),
                "1.850",
                [("type", "quantity", 'cannot read {"Qty":"six"} as int')],
                '{"Invoice":"536366","Qty":"six","When":"01/12/2010 08:28","Price":"1.85"}',
                "erp",
            ),
            (
                None,
                2,
                None,
                None,
                [
                    ("required", "invoice_no", "is missing"),
                    (
                        "type",
                        "invoice_date",
                        'cannot read {"When":"not a date"} as timestamp with format dd/MM/yyyy HH:mm',
                    ),
                ],
                '{"Invoice":"  ","Qty":"2","When":"not a date"}',
                "erp",
            ),
        ],
        "invoice_no STRING, quantity INT, invoice_date TIMESTAMP, unit_price STRING, "
        "_errors ARRAY<STRUCT<rule: STRING, column: STRING, message: STRING>>, _record STRING, _source STRING",
    ).selectExpr(
        "invoice_no",
        "quantity",
        "invoice_date",
        "CAST(unit_price AS DECIMAL(12,3)) AS unit_price",
        "_errors",
        "_record",
        "_source",
    )
    assert_df_equality(typed, expected, ignore_nullable=True)

    good = silver.accepted(typed)
    assert good.columns == ["invoice_no", "quantity", "invoice_date", "unit_price", "_source"]
    assert [row["invoice_no"] for row in good.collect()] == ["536365"]

    rejects = typed.transform(silver.rejected("silver/order_lines", "run-1", AT))
    assert tuple(rejects.columns) == silver.REJECT_COLUMNS
    assert [(r["table"], r["source"], [x["rule"] for x in r["reasons"]], r["run_id"]) for r in rejects.collect()] == [
        ("silver/order_lines", "erp", ["type"], "run-1"),
        ("silver/order_lines", "erp", ["required", "type"], "run-1"),
    ]


def test_line_id_is_equal_for_exact_duplicates_only(spark: SparkSession) -> None:
    lines = spark.createDataFrame(
        [("536365", 6, "2.550"), ("536365", 6, "2.550"), ("536365", 6, "2.551"), ("536365", None, "2.550")],
        "invoice_no STRING, quantity INT, unit_price STRING",
    ).selectExpr("invoice_no", "quantity", "CAST(unit_price AS DECIMAL(12,3)) AS unit_price")
    with_ids = lines.transform(silver.with_line_id(["invoice_no", "quantity", "unit_price"]))
    ids = [row[silver.LINE_ID] for row in with_ids.collect()]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 3
    assert all(len(i) == 64 for i in ids)
    assert with_ids.transform(silver.dedupe_lines).count() == 3


def test_clean_order_lines(spark: SparkSession) -> None:
    codes = {"postage": "^(POST|DOT|C2)$", "manual": "^[Mm]$", "gift_voucher": "^gift_0001_"}
    lines = spark.createDataFrame(
        [
            ("536365", "85123A", "  WHITE HANGING HEART ", 6, dt.datetime(2010, 12, 1, 8, 26), "2.550"),
            ("C536379", "D", "Discount", -1, dt.datetime(2010, 12, 1, 9, 41), "27.500"),
            ("536370", "POST", "POSTAGE", 3, dt.datetime(2010, 12, 1, 8, 45), "18.000"),
            ("536371", "m", None, 1, dt.datetime(2010, 12, 1, 9, 0), "0.420"),
            ("536372", "gift_0001_20", "Dotcomgiftshop Gift Voucher", 1, dt.datetime(2010, 12, 1, 9, 1), "17.020"),
        ],
        "invoice_no STRING, stock_code STRING, description STRING, quantity INT, invoice_date TIMESTAMP, "
        "unit_price STRING",
    ).selectExpr(
        "invoice_no",
        "stock_code",
        "description",
        "quantity",
        "invoice_date",
        "CAST(unit_price AS DECIMAL(12,3)) AS unit_price",
    )

    cleaned = lines.transform(silver.clean_order_lines("^[0-9]{5}", codes))

    expected = spark.createDataFrame(
        [
            ("536365", "85123A", "WHITE HANGING HEART", False, "product", True, "15.300", dt.date(2010, 12, 1)),
            ("C536379", "D", "Discount", True, "other_non_product", False, "-27.500", dt.date(2010, 12, 1)),
            ("536370", "POST", "POSTAGE", False, "postage", False, "54.000", dt.date(2010, 12, 1)),
            ("536371", "m", None, False, "manual", False, "0.420", dt.date(2010, 12, 1)),
            (
                "536372",
                "gift_0001_20",
                "Dotcomgiftshop Gift Voucher",
                False,
                "gift_voucher",
                False,
                "17.020",
                dt.date(2010, 12, 1),
            ),
        ],
        "invoice_no STRING, stock_code STRING, description STRING, is_cancellation BOOLEAN, "
        "stock_code_class STRING, is_product BOOLEAN, amount STRING, invoice_day DATE",
    ).selectExpr(
        "invoice_no",
        "stock_code",
        "description",
        "is_cancellation",
        "stock_code_class",
        "is_product",
        "CAST(amount AS DECIMAL(18,3)) AS amount",
        "invoice_day",
    )
    actual = cleaned.select(
        "invoice_no",
        "stock_code",
        "description",
        "is_cancellation",
        "stock_code_class",
        "is_product",
        "amount",
        "invoice_day",
    )
    assert_df_equality(actual, expected, ignore_nullable=True)
