"""Waiting on a condition with a bound, instead of sleeping for a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float, poll: float = 0.2) -> T:
    """Return ``condition()``'s first true value; fail, naming ``what``, when it is still false after ``timeout`` s.

    ``condition`` may itself fail an assertion to stop the wait early (a process that died, for one).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(poll)
