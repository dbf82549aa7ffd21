"""``etl-suite lineage upstream|downstream TABLE``: answered from ``audit/lineage_events``, without Spark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Node:
    """A dataset at a version, the write that made it (if the suite made it), and what it came from or feeds."""

    dataset: str
    version: int | None
    job: str | None = None
    run_id: str | None = None
    task: str | None = None
    rows: int | None = None
    children: list[Node] = field(default_factory=list)


def load_events(root: str) -> list[dict[str, Any]]:
    """Every lineage event of the lakehouse at ``root`` (empty if none was recorded yet)."""
    from etl_lib.io.portable import is_table, table_rows

    path = f"{root.rstrip('/')}/audit/lineage_events"
    return table_rows(path) if is_table(path) else []


def _writes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((e for e in events if e["kind"] == "write"), key=lambda e: (e["event_time"], e["version"] or -1))


def _producer(writes: list[dict[str, Any]], dataset: str, version: int | None) -> dict[str, Any] | None:
    mine = [w for w in writes if w["dataset"] == dataset]
    if version is None:
        return mine[-1] if mine else None
    exact = [w for w in mine if w["version"] == version]
    if exact:
        return exact[-1]
    # The version came from a commit of no recorded write (an earlier run's, say): the newest before it.
    earlier = [w for w in mine if w["version"] is not None and w["version"] <= version]
    return earlier[-1] if earlier else None


def upstream(events: list[dict[str, Any]], dataset: str, version: int | None = None) -> Node:
    """What ``dataset`` (at ``version``, default: its newest recorded) was made from, recursively.

    Args:
        events: the rows of ``audit/lineage_events`` (:func:`load_events`).
        dataset: the dataset as the suite names it (``gold/customer_features``).
        version: the dataset's Delta version; None for its newest recorded write.
    """
    writes = _writes(events)

    def walk(name: str, at: int | None, path: tuple[str, ...]) -> Node:
        write = _producer(writes, name, at)
        node = Node(name, at if at is not None else (write["version"] if write else None))
        if write is None or name in path:
            return node
        node.job, node.run_id, node.task, node.rows = write["job"], write["run_id"], write["task"], write["rows"]
        for source in write["inputs"] or []:
            node.children.append(walk(source["dataset"], source["version"], (*path, name)))
        return node

    return walk(dataset, version, ())


def downstream(events: list[dict[str, Any]], dataset: str) -> Node:
    """What was made from ``dataset``, recursively (each consumer once, at its newest recorded version)."""
    writes = _writes(events)

    def walk(name: str, path: tuple[str, ...]) -> Node:
        newest = _producer(writes, name, None)
        node = Node(name, newest["version"] if newest else None)
        if newest is not None:
            node.job, node.run_id, node.task, node.rows = (
                newest["job"],
                newest["run_id"],
                newest["task"],
                newest["rows"],
            )
        consumers = dict.fromkeys(
            w["dataset"] for w in writes if any(i["dataset"] == name for i in (w["inputs"] or []))
        )
        for consumer in consumers:
            if consumer not in path and consumer != name:
                node.children.append(walk(consumer, (*path, name)))
        return node

    return walk(dataset, ())


def render(node: Node, arrow: str) -> str:
    """The tree as indented lines: ``dataset vN  (job, task, run)``."""
    lines: list[str] = []

    def line(item: Node, depth: int) -> None:
        version = f" v{item.version}" if item.version is not None else ""
        made = f"  ({item.job}: {item.task}, {item.rows:,} rows, run {item.run_id})" if item.job else ""
        prefix = "" if depth == 0 else "   " * (depth - 1) + f"{arrow} "
        lines.append(f"{prefix}{item.dataset}{version}{made}")
        for child in item.children:
            line(child, depth + 1)

    line(node, 0)
    return "\n".join(lines)
