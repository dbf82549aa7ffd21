"""A PostgreSQL server from the operating system's packages, in a cluster of the suite's own."""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_lib.config import PostgresServiceConfig, ServicesConfig, secret_from_env
from etl_lib.config.secrets import remember
from etl_lib.errors import ServiceError
from etl_lib.services.base import LocalService

if TYPE_CHECKING:
    import pyarrow as pa

#: Columns of the orders table the local database plays, and the Online Retail columns they hold.
ORDER_COLUMNS = {
    "invoice_no": "InvoiceNo",
    "stock_code": "StockCode",
    "description": "Description",
    "quantity": "Quantity",
    "invoice_date": "InvoiceDate",
    "unit_price": "UnitPrice",
    "customer_id": "CustomerID",
    "country": "Country",
}

#: PostgreSQL refuses to run as root; when the suite runs as root the server runs as this user.
SERVER_USER_WHEN_ROOT = "postgres"


def postgres_bin_dir() -> Path:
    """Folder holding ``initdb`` and ``postgres`` (Debian's newest ``/usr/lib/postgresql/<v>/bin`` first)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda path: int(re.sub(r"\D", "", path.parent.parent.name) or 0),
        reverse=True,
    )
    if candidates:
        return candidates[0].parent
    on_path = shutil.which("postgres") or shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServiceError("PostgreSQL server binaries not found; `make setup` installs them (Debian package postgresql)")


class PostgresService(LocalService):
    """``etl-suite services up postgres``: a loopback-only cluster with password authentication."""

    name = "postgres"

    def __init__(self, services: ServicesConfig) -> None:
        super().__init__(services)
        self.pg: PostgresServiceConfig = services.postgres
        self._run_as = SERVER_USER_WHEN_ROOT if os.geteuid() == 0 else None

    @property
    def endpoint(self) -> str:
        return f"postgresql://{self.pg.user}@{self.pg.host}:{self.pg.port}/{self.pg.database}"

    @property
    def data_dir(self) -> Path:
        """The cluster folder. As root it lives in the temp folder, where the server user can reach it."""
        if self._run_as is None:
            return self.state_dir / "data"
        digest = hashlib.sha256(str(self.state_dir.resolve()).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"etl-suite-postgres-{digest}"

    def password(self) -> str:
        """The password of the cluster's user: from ``$<password_env>``, else the one made at first start."""
        from_env = secret_from_env(self.pg.password_env)
        if from_env:
            return from_env
        stored = self.state_dir / "password"
        if stored.is_file():
            return remember(stored.read_text(encoding="utf-8").strip())
        raise ServiceError(
            f"postgres: no password: set ${self.pg.password_env} or start the local server once "
            "(`etl-suite services up postgres`) to create one"
        )

    def _initial_password(self) -> str:
        from_env = secret_from_env(self.pg.password_env)
        if from_env:
            return from_env
        stored = self.state_dir / "password"
        if not stored.is_file():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(stored, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(secrets.token_urlsafe(24))
        return stored.read_text(encoding="utf-8").strip()

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            record = pwd.getpwnam(self._run_as)
            os.chown(path, record.pw_uid, record.pw_gid)

    def _initdb(self, bin_dir: Path) -> None:
        data = self.data_dir
        data.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._chown(data)
        # initdb reads the password from a file; it exists only for the duration of the call, in a
        # private folder beside (not inside) the cluster folder, which initdb wants empty.
        secret_dir = Path(tempfile.mkdtemp(prefix="etl-suite-pg-init-"))
        pwfile = secret_dir / "pwfile"
        try:
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self._initial_password() + "\n")
            self._chown(secret_dir)
            self._chown(pwfile)
            completed = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    self.pg.user,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                check=False,
                user=self._run_as,
            )
        finally:
            shutil.rmtree(secret_dir, ignore_errors=True)
        if completed.returncode != 0:
            raise ServiceError(f"postgres: initdb failed:\n{completed.stdout}{completed.stderr}")

    def _start(self) -> None:
        bin_dir = postgres_bin_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bin_dir)
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.pg.port),
            "-c",
            f"listen_addresses={self.pg.host}",
            "-c",
            "unix_socket_directories=",
            # A disposable local server: durability is traded for speed.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=50",
        ]
        self.process.start(command, marker=str(self.data_dir), user=self._run_as)

    def healthy(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=self.pg.host,
                port=self.pg.port,
                user=self.pg.user,
                password=self.password(),
                dbname="postgres",
                connect_timeout=3,
                autocommit=True,
            ) as connection:
                connection.execute("SELECT 1")
                exists = connection.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.pg.database,)
                ).fetchone()
                if exists is None:
                    from psycopg import sql

                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.pg.database)))
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                raise ServiceError(
                    f"postgres: the server at {self.pg.host}:{self.pg.port} rejects the password "
                    f"(from ${self.pg.password_env} or {self.state_dir / 'password'})"
                ) from None
            return False
        return True

    def connect(self) -> Any:
        """A psycopg connection (autocommit) to the configured database."""
        import psycopg

        return psycopg.connect(
            host=self.pg.host,
            port=self.pg.port,
            user=self.pg.user,
            password=self.password(),
            dbname=self.pg.database,
            connect_timeout=5,
            autocommit=True,
        )

    def load_order_lines(self, rows: pa.Table, table: str = "online_retail") -> int:
        """Append Online Retail rows to an orders table of the operational database (created if absent).

        The table gets an identity ``id`` in load order, the high-water mark the batch layer extracts by.

        Returns:
            The number of rows loaded.
        """
        from psycopg import sql

        columns = list(ORDER_COLUMNS)
        with self.connect() as connection:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                    "invoice_no TEXT, stock_code TEXT, description TEXT, quantity INTEGER, invoice_date TIMESTAMP, "
                    "unit_price DOUBLE PRECISION, customer_id BIGINT, country TEXT, "
                    "loaded_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                ).format(sql.Identifier(table))
            )
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            )
            with connection.cursor() as cursor, cursor.copy(statement) as copy:
                for batch in rows.select(list(ORDER_COLUMNS.values())).to_batches(50_000):
                    for record in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                        copy.write_row(record)
        return int(rows.num_rows)

    def down(self) -> bool:
        import signal

        # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit.
        return self.process.stop(sig=signal.SIGINT)
