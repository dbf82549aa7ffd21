"""How `make test` gives the test modules out to its workers (pytest-xdist's ``loadgroup``, slow groups first).

Each module is a group of its own (tests/conftest.py), and pytest-xdist gives the groups out in order of how many
tests they hold, most first, as each worker runs low: a module of one long test went last, and the run waited for it
on one worker while the other had nothing left. Groups that hold a test marked ``slow`` are named with
:data:`SLOW` at the end, and go out before the others, so that what is left at the end is short.
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadGroupScheduling

#: The end of the name of a group holding a test marked ``slow``.
SLOW = "+slow"


class SlowFirst(LoadGroupScheduling):
    """``loadgroup`` scheduling that gives out the groups of slow tests before the others."""

    def _assign_work_unit(self, node: Any) -> None:
        slow = next((group for group in self.workqueue if group.endswith(SLOW)), None)
        if slow is not None:
            self.workqueue.move_to_end(slow, last=False)
        super()._assign_work_unit(node)
