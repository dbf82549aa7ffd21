"""Frames kept in memory for the length of a block, and let go of in the right order."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, TypeVar


class _Persistable(Protocol):
    def persist(self) -> _Persistable: ...

    def unpersist(self) -> object: ...


FrameT = TypeVar("FrameT", bound=_Persistable)


class Cached:
    """Persists frames for a ``with`` block and unpersists them when it ends, the last persisted first.

    Uncaching a frame that another cached frame is built on makes Spark re-plan the one built on it (a
    few tenths of a second each time on a micro-batch); letting go of the dependants first avoids that.
    Frames are persisted in the order they are built, so the reverse order is always dependants first.
    """

    def __init__(self) -> None:
        self._frames: list[_Persistable] = []

    def __call__(self, frame: FrameT) -> FrameT:
        """``frame`` persisted (and remembered for the end of the block)."""
        kept = frame.persist()
        self._frames.append(kept)
        return kept  # type: ignore[return-value]

    def __enter__(self) -> Cached:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        while self._frames:
            self._frames.pop().unpersist()
