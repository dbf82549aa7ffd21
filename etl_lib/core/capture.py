"""Recording what a task reads, as it reads it.

The lakehouse I/O functions call :func:`record_read`; whatever task is running on the thread (set with
:func:`task_scope` by the runner or the task graph) gets the read. Writes need no recording: every
Delta commit of the suite names its run and task in its metadata.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Read:
    """A task read ``dataset`` (a table path, or an external source's URI) at ``version`` (if it has one)."""

    task: str
    dataset: str
    version: int | None


class LineageRecorder:
    """The reads of one run, from any of its threads."""

    def __init__(self) -> None:
        self._reads: list[Read] = []
        self._lock = threading.Lock()

    def add(self, read: Read) -> None:
        with self._lock:
            self._reads.append(read)

    def reads(self) -> list[Read]:
        """Every read so far, the newest version of each (task, dataset) once."""
        with self._lock:
            reads = list(self._reads)
        newest: dict[tuple[str, str], Read] = {}
        for read in reads:
            key = (read.task, read.dataset)
            known = newest.get(key)
            if known is None or (read.version or -1) > (known.version or -1):
                newest[key] = read
        return list(newest.values())


_scope = threading.local()


@contextmanager
def task_scope(recorder: LineageRecorder, task: str) -> Iterator[None]:
    """Attribute the reads made on this thread inside the block to ``task``."""
    previous = getattr(_scope, "current", None)
    _scope.current = (recorder, task)
    try:
        yield
    finally:
        _scope.current = previous


def recording() -> bool:
    """True when a task scope is active on this thread (reads would be recorded)."""
    return getattr(_scope, "current", None) is not None


def record_read(dataset: str, version: int | None) -> None:
    """Note that the task running on this thread read ``dataset`` (nothing happens outside a scope)."""
    current = getattr(_scope, "current", None)
    if current is not None:
        recorder, task = current
        recorder.add(Read(task, dataset, version))
