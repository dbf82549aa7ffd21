"""Reading the lakehouse without Spark: the ``deltalake`` package and DuckDB.

The suite promises that every table stays readable by other engines; these readers are how the tests
check it and how ``etl-suite tables`` lists the lakehouse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_lib.config import LAYERS, is_uri


@dataclass(frozen=True)
class TableInfo:
    """A Delta table found under the lakehouse root."""

    layer: str
    table: str
    path: str
    version: int
    rows: int
    last_operation: str


def delta_rows(path: str) -> int:
    """Row count of the Delta table at ``path`` from its file statistics (no data is read)."""
    from deltalake import DeltaTable

    table = DeltaTable(path)
    actions = table.get_add_actions(flatten=True)
    column = actions.column("num_records")
    return int(sum(value for value in column.to_pylist() if value is not None))


def describe(layer: str, table: str, path: str) -> TableInfo:
    """Version, row count and last operation of one table, read with ``deltalake``.

    Args:
        layer: the table's layer, for the result.
        table: the table's name, for the result.
        path: the table, which is read.
    """
    from deltalake import DeltaTable

    delta = DeltaTable(path)
    history = delta.history(1)
    operation = str(history[0].get("operation", "")) if history else ""
    return TableInfo(layer, table, path, int(delta.version()), delta_rows(path), operation)


def list_tables(root: str) -> list[TableInfo]:
    """Every Delta table at ``<root>/<layer>/<table>`` of a local lakehouse, sorted by layer then name."""
    if is_uri(root):
        raise ValueError(f"listing tables needs a local lakehouse root, not {root}")
    found: list[TableInfo] = []
    for layer in LAYERS:
        layer_dir = Path(root) / layer
        if not layer_dir.is_dir():
            continue
        for table_dir in sorted(layer_dir.iterdir()):
            if (table_dir / "_delta_log").is_dir():
                found.append(describe(layer, table_dir.name, str(table_dir)))
    return found


def table_rows(path: str, where: str = "") -> list[dict[str, Any]]:
    """Every row of the (small) Delta table at ``path`` as dicts, read by DuckDB.

    Used for the audit tables the command line reports on; ``where`` is an SQL condition the caller builds
    from its own code, never from user input.
    """
    connection = duckdb_connection()
    try:
        escaped = path.replace("'", "''")
        clause = f" WHERE {where}" if where else ""
        cursor = connection.execute(f"SELECT * FROM delta_scan('{escaped}'){clause}")  # noqa: S608
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        connection.close()


def is_table(path: str) -> bool:
    """True if a local Delta table is at ``path``."""
    return (Path(path) / "_delta_log").is_dir()


def duckdb_checksum(path: str) -> tuple[int, int]:
    """``(rows, digest)`` of a Delta table computed by DuckDB: the sum of a hash of every row.

    Independent of row order and file layout, so two tables holding the same rows agree.
    """
    [(rows, digest)] = duckdb_query("SELECT count(*), coalesce(sum(hash(t)), 0) FROM t", t=path)
    return int(rows), int(digest)


def duckdb_connection() -> Any:
    """A DuckDB connection with the ``delta`` extension loaded from the pip package (no download)."""
    from importlib import resources

    import duckdb

    connection = duckdb.connect()
    connection.execute("SET extension_directory = ?", [str(resources.files("duckdb_ext") / "extensions")])
    connection.execute("SET autoinstall_known_extensions = false")
    connection.execute("LOAD delta")
    return connection


def duckdb_query(sql: str, parameters: Sequence[Any] = (), **tables: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` (with ``?`` placeholders bound to ``parameters``) in DuckDB, each keyword a Delta table's view.

    Example: ``duckdb_query("SELECT count(*) FROM t WHERE id = ?", ["7"], t="/lake/bronze/x")``.
    """
    connection = duckdb_connection()
    try:
        for name, path in tables.items():
            escaped = path.replace("'", "''")
            connection.execute(f"CREATE VIEW {name} AS SELECT * FROM delta_scan('{escaped}')")  # noqa: S608
        rows: list[tuple[Any, ...]] = connection.execute(sql, list(parameters)).fetchall()
        return rows
    finally:
        connection.close()
