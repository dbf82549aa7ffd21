from __future__ import annotations

from pathlib import Path

from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from etl_lib.io import lakehouse
from etl_lib.io.portable import delta_rows, duckdb_query

SCHEMA = "customer_id STRING, segment STRING, spend DOUBLE"


def test_write_read_time_travel_and_merge(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "silver" / "customers")
    first = spark.createDataFrame([("c1", "Low", 50.0), ("c2", "Medium", 500.0)], SCHEMA)
    first.write.format("delta").save(path)

    assert_df_equality(spark.read.format("delta").load(path), first, ignore_row_order=True)

    changes = spark.createDataFrame([("c2", "High", 1500.0), ("c3", "Low", 10.0)], SCHEMA)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(changes.alias("s"), "t.customer_id = s.customer_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )

    expected_now = spark.createDataFrame([("c1", "Low", 50.0), ("c2", "High", 1500.0), ("c3", "Low", 10.0)], SCHEMA)
    assert_df_equality(spark.read.format("delta").load(path), expected_now, ignore_row_order=True)
    # Time travel: version 0 is what the first write committed, unchanged by the MERGE.
    version_zero = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assert_df_equality(version_zero, first, ignore_row_order=True)

    commits = lakehouse.commits_since(spark, path, None)
    assert [(c.version, c.operation) for c in commits] == [(0, "WRITE"), (1, "MERGE")]
    assert commits[1].metrics["numTargetRowsUpdated"] == "1"
    assert commits[1].metrics["numTargetRowsInserted"] == "1"
    assert commits[1].rows_written == 2
    assert lakehouse.current_version(spark, path) == 1


def test_tables_stay_readable_by_deltalake_and_duckdb(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "gold" / "t")
    frame = spark.createDataFrame([("c1", "Low", 50.0), ("c2", "High", 1500.0)], SCHEMA)
    frame.write.format("delta").save(path)
    DeltaTable.forPath(spark, path).delete("customer_id = 'c1'")

    from deltalake import DeltaTable as RustDeltaTable

    rust = RustDeltaTable(path).to_pyarrow_table()
    assert rust.to_pylist() == [{"customer_id": "c2", "segment": "High", "spend": 1500.0}]
    assert delta_rows(path) == 1
    assert duckdb_query("SELECT customer_id, spend FROM t", t=path) == [("c2", 1500.0)]


def test_no_table_yet_has_no_version(spark: SparkSession, tmp_path: Path) -> None:
    assert lakehouse.current_version(spark, str(tmp_path / "absent")) is None
    assert lakehouse.commits_since(spark, str(tmp_path / "absent"), None) == []
