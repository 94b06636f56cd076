"""The layering of docs/ARCHITECTURE.md, proved from the source rather than described.

Every import counts, lazy ones inside functions and type-only ones too: a
rule broken only under `TYPE_CHECKING` is still an arrow a reader follows.
Each rule is also run against a small planted violation, so a rule that
silently matched nothing would fail here instead of passing forever.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "fbstampli"

# The engine and its edges never reach up to the wiring or the command line.
UPWARD = ("fbstampli.services", "fbstampli.runtime", "fbstampli.cli")
# What does I/O: the network, SSH, the database, processes, the servers, the terminal.
IO_MODULES = (
    "requests",
    "paramiko",
    "sqlcipher3",
    "socket",
    "subprocess",
    "http",
    "urllib.request",
    "keyring",
    "rich",
    "typer",
    "fbstampli.store",
    "fbstampli.sftp",
    "fbstampli.freshbooks",
    "fbstampli.sandbox",
    "fbstampli.listener",
    "fbstampli.lock",
)
# Only these may start the stand-in servers: the `sandbox`/`demo` commands and the demo.
SANDBOX_USERS = ("fbstampli/cli/", "fbstampli/services/sandbox.py", "fbstampli/sandbox/")
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
    r"CREATE\s+(TABLE|INDEX)|ALTER\s+TABLE|DROP\s+TABLE|PRAGMA\s+\w+|BEGIN\s+IMMEDIATE)\b",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Source:
    path: str  # relative to the repository, with forward slashes
    tree: ast.Module


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every import anywhere in the file."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from fbstampli import services` names a module too
                yield node.lineno, f"{node.module}.{alias.name}"


def is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(f"{prefix}.") for prefix in prefixes)


def string_constants(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string literal, and the literal parts of each f-string joined as one text."""
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in inside_fstrings:
                yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
            yield node.lineno, " ? ".join(str(part) for part in parts)


def violations(source: Source) -> list[str]:
    """Each broken layering rule in one file, as `path:line: what`, once per statement."""
    found: dict[tuple[int, str], str] = {}
    path = source.path
    room = path.split("/")[1] if path.count("/") >= 2 else ""
    for line, module in imported(source.tree):
        where = f"{path}:{line}"
        if room in ("sync", "stampli", "freshbooks", "store") and is_under(module, UPWARD):
            found.setdefault((line, "up"), f"{where}: {room}/ imports {module} (upward)")
        if room == "stampli" and is_under(module, IO_MODULES):
            found.setdefault((line, "io"), f"{where}: stampli/ imports {module}, which does I/O")
        if room == "freshbooks" and is_under(module, ("fbstampli.store",)):
            found.setdefault((line, "fb"), f"{where}: freshbooks/ imports {module}; HTTP only")
        if is_under(module, ("fbstampli.sandbox",)) and not path.startswith(SANDBOX_USERS):
            found.setdefault(
                (line, "sandbox"), f"{where}: imports {module}; only the CLI and the demo may"
            )
    if room != "store":
        for line, text in string_constants(source.tree):
            if SQL.search(text):
                found.setdefault((line, "sql"), f"{path}:{line}: SQL outside store/: {text[:60]!r}")
    return list(found.values())


def package_sources() -> list[Source]:
    root = PACKAGE.parent
    return [
        Source(path.relative_to(root).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


def test_the_package_keeps_its_layers() -> None:
    sources = package_sources()
    assert len(sources) > 40  # the walk found the package, not an empty folder
    problems = [problem for source in sources for problem in violations(source)]
    assert problems == []


@pytest.mark.parametrize(
    ("path", "code", "expected"),
    [
        ("fbstampli/sync/push.py", "from fbstampli.runtime import Runtime", "upward"),
        ("fbstampli/store/outbox.py", "def f():\n    import fbstampli.cli", "upward"),
        ("fbstampli/sync/pull.py", "from fbstampli import services", "upward"),
        ("fbstampli/stampli/render.py", "import requests", "does I/O"),
        ("fbstampli/stampli/parse.py", "from fbstampli.store import Store", "does I/O"),
        ("fbstampli/freshbooks/client.py", "from fbstampli.store.credentials import x", "HTTP"),
        ("fbstampli/services/sync.py", "from fbstampli.sandbox.freshbooks import X", "the demo"),
        ("fbstampli/doctor.py", 'Q = "SELECT id FROM runs"', "SQL outside"),
        ("fbstampli/sync/deliver.py", 'q = f"UPDATE batches SET x = {1}"', "SQL outside"),
    ],
)
def test_a_planted_violation_is_caught(path: str, code: str, expected: str) -> None:
    found = violations(Source(path, ast.parse(code)))
    assert len(found) == 1
    assert expected in found[0]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("fbstampli/store/outbox.py", 'Q = "SELECT id FROM runs"'),
        ("fbstampli/cli/sandbox.py", "from fbstampli.sandbox.freshbooks import run_sandbox"),
        ("fbstampli/freshbooks/client.py", 'self._call("DELETE", path)'),
        ("fbstampli/services/sync.py", "from fbstampli.store import outbox"),
    ],
)
def test_what_the_layers_allow_is_not_flagged(path: str, code: str) -> None:
    assert violations(Source(path, ast.parse(code))) == []
