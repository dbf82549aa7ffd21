"""Frames kept in memory for the length of a block, and let go of in the right order."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Protocol, TypeVar


class _Persistable(Protocol):
    def persist(self) -> _Persistable: ...

    def unpersist(self) -> object: ...


FrameT = TypeVar("FrameT", bound=_Persistable)


class Cached(ExitStack):
    """Persists frames for a ``with`` block and unpersists them when it ends, the last persisted first.

    Uncaching a frame that another cached frame is built on makes Spark re-plan the one built on it (a
    few tenths of a second each time on a micro-batch); letting go of the dependants first avoids that.
    Frames are persisted in the order they are built, so the reverse order (the exit stack's) is always
    dependants first.
    """

    def __call__(self, frame: FrameT) -> FrameT:
        """``frame`` persisted (and unpersisted when the block ends)."""
        kept = frame.persist()
        self.callback(kept.unpersist)
        return kept  # type: ignore[return-value]
