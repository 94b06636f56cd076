"""Modules and functions stay small enough to read in one sitting (docs/ARCHITECTURE.md).

The stand-in servers under sandbox/ are left out: they are scaffolding for the
tests and the demo, not the product.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fbstampli"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def too_long(text: str, where: str) -> list[str]:
    """Each way `text` (the module at `where`) is over the limits, as `where: what`."""
    found = []
    lines = text.count("\n")
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: {lines} lines")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{where}:{node.lineno}: {node.name} is {length} lines")
    return found


def test_no_module_or_function_is_too_long_to_read() -> None:
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if "sandbox" not in path.parts]
    assert len(modules) > 100  # the walk found the package
    problems = [
        problem
        for path in modules
        for problem in too_long(
            path.read_text(encoding="utf-8"), path.relative_to(PACKAGE.parent).as_posix()
        )
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = 1\n" * (MAX_MODULE_LINES + 1), "451 lines"),
        ("def f():\n" + "    x = 1\n" * MAX_FUNCTION_LINES, "f is 61 lines"),
        ("class C:\n    async def g(self):\n" + "        x = 1\n" * 60, "g is 61 lines"),
    ],
)
def test_a_planted_long_module_or_function_is_caught(text: str, expected: str) -> None:
    found = too_long(text, "fbstampli/planted.py")
    assert len(found) == 1
    assert expected in found[0]
