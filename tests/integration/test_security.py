"""Secrets planted where a deployment keeps them never reach a table, a file of the lakehouse or a log;
a database that cannot be reached fails the run after bounded retries with the mark unmoved; local
services listen on loopback only."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable

from etl_lib.config import RedisServiceConfig, SuiteConfig, is_loopback
from etl_lib.errors import ServiceError
from etl_lib.io.clients import local_client
from etl_lib.services.aws import AwsService
from etl_lib.services.base import LocalService
from etl_lib.services.kafka import KafkaService
from etl_lib.services.postgres import ORDER_COLUMNS, PostgresService
from etl_lib.services.redis import RedisService
from tests.ports import closed_port

# A test of the suite's own logic, on the primary line: the suite's own handling of secrets, the same Python on
# either line (see the primary_line marker).
pytestmark = pytest.mark.primary_line

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT / "data" / "online_retail" / "online_retail.parquet"
ROWS = 3_000
PII_KEY = "planted-pii-key-0b9e7c41d2"
SECRET_NAME = "etl-suite/tests/orders-db"


def write_config(path: Path, suite_config: SuiteConfig, postgres: PostgresService, root: Path, url: str) -> Path:
    """A configuration file as a user writes one: references to secrets, never secrets."""
    data = {
        "extends": str(PROJECT / "conf" / "test.yaml"),
        "lakehouse": {"root": str(root)},
        "services": {"work_dir": suite_config.services.work_dir},
        "run": {"process_date": "2011-12-10"},
        "secrets": {"aws_local_endpoint": True},
        "privacy": {"pii": {"order_lines": {"customer_id": "hash"}}, "hash_key_secret": "env:ETL_TEST_PII_KEY"},
        "sources": {
            "online_retail": None,
            "orders_db": {
                "kind": "jdbc",
                "url": url,
                "user": postgres.pg.user,
                "password_secret": f"aws-secretsmanager:{SECRET_NAME}#password",
                "source_table": "public.orders_secured",
                "table": "orders_db",
                "watermark_column": "id",
                "entity": "order_lines",
                "columns": {name: name for name in ORDER_COLUMNS},
                "connect_attempts": 3,
                "retry_wait_seconds": 0.5,
            },
        },
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_batch_layer(conf: Path, pg_password_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != pg_password_env}
    env |= {"ETL_TEST_PII_KEY": PII_KEY, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run(
        [str(Path(sys.executable).parent / "etl-suite"), "run", "batch_layer", "--conf", str(conf)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def delta_tables(root: Path) -> list[Path]:
    return sorted(
        log.parent
        for log in root.rglob("_delta_log")
        if not any(p.startswith("_") for p in log.parent.relative_to(root).parts)
    )


def test_planted_secrets_reach_no_table_file_or_log_and_an_unreachable_database_moves_nothing(
    suite_config: SuiteConfig, postgres: PostgresService, aws: AwsService, tmp_path: Path
) -> None:
    password = postgres.password()
    with postgres.connect() as connection:
        connection.execute("DROP TABLE IF EXISTS orders_secured")
    assert postgres.load_order_lines(pq.read_table(DATA).slice(0, ROWS), table="orders_secured") == ROWS
    manager = local_client(aws.aws, "secretsmanager")
    secret = json.dumps({"username": postgres.pg.user, "password": password})
    try:
        manager.create_secret(Name=SECRET_NAME, SecretString=secret)
    except manager.exceptions.ResourceExistsException:
        manager.put_secret_value(SecretId=SECRET_NAME, SecretString=secret)

    root = tmp_path / "lake"
    pg = postgres.pg
    good = write_config(tmp_path / "good.yaml", suite_config, postgres, root, pg.jdbc_url)
    first = run_batch_layer(good, pg.password_env)
    assert first.returncode == 0, first.stderr[-3000:]

    # The database goes away: bounded retries, then one clear line and the "try later" exit code.
    unreachable = f"jdbc:postgresql://127.0.0.1:{closed_port()}/{pg.database}"
    marks = DeltaTable(str(root / "audit" / "bookmarks"))
    marks_before = (marks.version(), marks.to_pyarrow_table().to_pylist())
    bronze_version = DeltaTable(str(root / "bronze" / "orders_db")).version()
    down = run_batch_layer(
        write_config(tmp_path / "down.yaml", suite_config, postgres, root, unreachable), pg.password_env
    )
    assert down.returncode == 75, down.stderr[-3000:]
    error = down.stderr[down.stderr.index("\nerror: ") + 1 :].splitlines()
    assert error[0].startswith("error: ")
    assert error[0].endswith(" tasks did not succeed:")
    [landing] = [line for line in error if ": failed: " in line]
    assert landing.startswith("  bronze/orders_db: failed: SourceUnavailableError: sources.orders_db: the database at ")
    assert f"{unreachable} could not be reached after 3 attempt(s)" in landing
    assert "nothing was read and the high-water mark did not move" in landing
    assert all(": skipped: not run: " in line for line in error[1:] if line != landing)
    assert down.stderr.count("database unreachable") == 2  # the two retries, logged
    assert "Traceback" not in down.stderr
    marks = DeltaTable(str(root / "audit" / "bookmarks"))
    assert (marks.version(), marks.to_pyarrow_table().to_pylist()) == marks_before
    assert DeltaTable(str(root / "bronze" / "orders_db")).version() == bronze_version

    runs = DeltaTable(str(root / "audit" / "etl_runs")).to_pyarrow_table().to_pylist()
    assert [
        (r["job"], r["status"]) for r in sorted(runs, key=lambda r: r["started_at"]) if r["status"] != "running"
    ] == [
        ("batch_layer", "succeeded"),
        ("batch_layer", "failed"),
    ]

    # Silver holds the keyed hash of the customer, as anyone with the key can recompute it, and never the id.
    silver = DeltaTable(str(root / "silver" / "order_lines")).to_pyarrow_table(columns=["customer_id"]).to_pylist()
    bronze = DeltaTable(str(root / "bronze" / "orders_db")).to_pyarrow_table(columns=["customer_id"]).to_pylist()
    raw_ids = {str(r["customer_id"]) for r in bronze if r["customer_id"] is not None}
    expected = {hmac.new(PII_KEY.encode(), raw.encode(), hashlib.sha256).hexdigest() for raw in raw_ids}
    assert {r["customer_id"] for r in silver if r["customer_id"] is not None} == expected
    gold_text = "".join(
        repr(DeltaTable(str(t)).to_pyarrow_table().to_pylist()) for t in delta_tables(root) if t.parts[-2] == "gold"
    )
    assert not any(f"'{raw}'" in gold_text for raw in list(raw_ids)[:50])

    # Every table's rows, every file of the lakehouse (commit logs, checkpoints, lineage events) and every log.
    planted = {"database password": password, "hash key": PII_KEY}
    tables = delta_tables(root)
    assert {f"{t.parent.name}/{t.name}" for t in tables} >= {
        "audit/etl_runs",
        "audit/lineage_events",
        "silver/order_lines",
    }
    for name, value in planted.items():
        for table in tables:
            assert value not in repr(DeltaTable(str(table)).to_pyarrow_table().to_pylist()), f"{name} in {table}"
        for file in (f for f in root.rglob("*") if f.is_file()):
            assert value.encode() not in file.read_bytes(), f"{name} in {file}"
        for run, output in (("first", first), ("down", down)):
            assert value not in output.stdout + output.stderr, f"{name} in the {run} run's output"


def listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address = fields[1].split(":")[0]
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_every_local_service_listens_on_loopback_only(
    kafka: KafkaService, postgres: PostgresService, aws: AwsService, redis_server: RedisService
) -> None:
    services: list[LocalService] = [kafka, postgres, aws, redis_server]
    for service in services:
        pid = service.process.pid()
        assert pid is not None, service.name
        addresses = listening_addresses(pid)
        assert addresses, f"{service.name} listens on nothing"
        assert all(is_loopback(address.removeprefix("::ffff:")) for address in addresses), (service.name, addresses)


def test_a_service_is_never_started_off_loopback(suite_config: SuiteConfig, tmp_path: Path) -> None:
    # Redis may be a remote server the suite only uses, so its host is free; the suite never starts one there.
    everywhere = "0.0.0.0"  # noqa: S104 - the address refused here
    services = suite_config.services.model_copy(
        update={"redis": RedisServiceConfig(host=everywhere, port=16399), "work_dir": str(tmp_path)}
    )
    with pytest.raises(ServiceError, match=r"^redis: services.redis.host is 0.0.0.0; the suite starts local servers"):
        RedisService(services).up()
    assert RedisService(services).process.pid() is None
