"""The batch layer with its lakehouse on s3a:// (hadoop-aws) against the local S3-compatible endpoint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from etl_lib.config.secrets import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY
from etl_lib.io.clients import local_client
from etl_lib.services.aws import AwsService

PROJECT = Path(__file__).resolve().parents[2]
BUCKET = "etl-suite-lake"


@pytest.mark.slow
def test_the_batch_layer_writes_and_reads_its_layers_on_s3a(aws: AwsService, tmp_path: Path) -> None:
    local_client(aws.aws, "s3").create_bucket(Bucket=BUCKET)
    whole = pq.read_table(PROJECT / "data" / "online_retail" / "online_retail.parquet")
    (tmp_path / "extract").mkdir()
    sample = whole.take(list(range(0, whole.num_rows, 50)))
    pq.write_table(sample, tmp_path / "extract" / "part.parquet")
    root = f"s3a://{BUCKET}/lakehouse"
    settings = {
        "lakehouse.root": root,
        "sources.online_retail.path": str(tmp_path / "extract"),
        "run.process_date": "2011-12-10",
        "ml.work_dir": str(tmp_path / "mlflow"),
        "spark.conf.spark.sql.warehouse.dir": str(tmp_path / "warehouse"),
        # Any S3-compatible store: its endpoint and path-style addressing. Credentials come from the
        # environment (s3a's default provider chain), never from the configuration.
        "spark.conf.spark.hadoop.fs.s3a.endpoint": aws.endpoint,
        "spark.conf.spark.hadoop.fs.s3a.endpoint.region": aws.aws.region,
        "spark.conf.spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.conf.spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    }
    command = [
        str(Path(sys.executable).parent / "etl-suite"),
        "run",
        "batch_layer",
        "--conf",
        str(PROJECT / "conf" / "test.yaml"),
    ]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY}
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert completed.returncode == 0, completed.stderr[-5000:]
    assert re.search(rf"bronze/online_retail +{sample.num_rows:,} rows", completed.stdout)
    assert f"{root}/silver/order_lines" in completed.stdout

    # The tables are in the bucket, as Delta tables other engines read (the deltalake package here).
    options = {
        "AWS_ENDPOINT_URL": aws.endpoint,
        "AWS_REGION": aws.aws.region,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
    }
    bronze = DeltaTable(f"s3://{BUCKET}/lakehouse/bronze/online_retail", storage_options=options)
    assert bronze.to_pyarrow_dataset().count_rows() == sample.num_rows
    silver = DeltaTable(f"s3://{BUCKET}/lakehouse/silver/order_lines", storage_options=options)
    # What the job wrote to silver, having read bronze back from s3a, is what the bucket holds.
    written = re.search(r"silver/order_lines +([\d,]+) rows", completed.stdout)
    assert written is not None
    assert silver.to_pyarrow_dataset().count_rows() == int(written.group(1).replace(",", "")) > 0
    # Gold, read back from the bucket, accounts for every silver line there (the process date is after the last).
    daily = DeltaTable(f"s3://{BUCKET}/lakehouse/gold/daily_revenue", storage_options=options)
    days = daily.to_pyarrow_table(columns=["invoice_day", "country", "net_revenue", "lines"])
    lines = silver.to_pyarrow_table(columns=["invoice_day", "country", "amount"])
    assert pc.sum(days["lines"]).as_py() == lines.num_rows
    assert pc.sum(days["net_revenue"]).as_py() == pc.sum(lines["amount"]).as_py()
    keys = days.select(["invoice_day", "country"]).to_pylist()
    assert len(keys) == len({tuple(k.values()) for k in keys})  # one row a day and country
    assert {tuple(k.values()) for k in keys} == {
        tuple(k.values()) for k in lines.select(["invoice_day", "country"]).to_pylist()
    }
