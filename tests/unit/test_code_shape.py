"""The house rules the linters do not check: what a newcomer reads in one pass stays that way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
LONGEST = 60


def long_functions_without_a_reason(source: str, longest: int = LONGEST) -> list[str]:
    """Functions of ``source`` over ``longest`` lines (docstring included) with no "One piece" comment above them."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            above = "\n".join(lines[max(0, first - 6) : first - 1])
            if length > longest and "one piece" not in above.lower():
                found.append(f"{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("module", sorted(PROJECT.glob("etl_lib/**/*.py")), ids=lambda path: str(path.name))
def test_no_function_of_the_library_is_over_60_lines_without_saying_why(module: Path) -> None:
    assert long_functions_without_a_reason(module.read_text(encoding="utf-8")) == []


def test_the_rule_finds_a_long_function_and_accepts_one_that_says_why() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert long_functions_without_a_reason(f"def long():\n{body}\n") == ["long (62 lines)"]
    reason = "# One piece: the steps are read in order.\n"
    assert long_functions_without_a_reason(f"{reason}def long():\n{body}\n") == []
    assert long_functions_without_a_reason(f"def short():\n{body[:200]}\n") == []
