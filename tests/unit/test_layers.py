"""The layering of docs/ARCHITECTURE.md, proved from the source rather than described.

The contract itself is declared once, for import-linter, in pyproject.toml
(`[tool.importlinter]`): the layers, no cycles, and which library each room
may import. `lint-imports` runs it in CI; here it runs on every test run,
on grimp's import graph plus what grimp cannot see: `importlib.import_module`
of a constant name. Every import counts, relative, lazy and type-only ones
too: a rule broken only under `TYPE_CHECKING` is still an arrow a reader follows.
Beside it, the one rule that is not about imports: no SQL outside `store/`.

Each rule is also run against a planted violation of each kind, so a rule
that silently matched nothing would fail here instead of passing forever.
"""

from __future__ import annotations

import ast
import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter.configuration import configure
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.protected import ProtectedContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fbstampli"
PYPROJECT = ROOT / "pyproject.toml"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

CONTRACT_TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "protected": ProtectedContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}

_STATEMENT = (
    r"SELECT\s.+\sFROM|(INSERT|REPLACE)(\s+OR\s+(REPLACE|IGNORE|ABORT|FAIL|ROLLBACK))?\s+INTO|"
    r"UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(UNIQUE\s+)?(TABLE|INDEX|TRIGGER|VIEW)|"
    r"ALTER\s+TABLE|DROP\s+(TABLE|INDEX)|PRAGMA\s+\w+|BEGIN\s+(IMMEDIATE|EXCLUSIVE)"
)
# Upper case as written in store/, and lower case too, where prose is told apart by the
# shape of a statement: a lower-case `select ... from` must name columns, not say a sentence.
SQL = re.compile(rf"\b({_STATEMENT})\b", re.DOTALL)
SQL_LOWER = re.compile(
    r"\b(select\s+(\*|[\w.]+(\s*,\s*[\w.]+)*)\s+from\s+\w+|(insert|replace)(\s+or\s+\w+)?\s+into\s+\w+"
    r"|update\s+\w+\s+set\s+\w+\s*=|delete\s+from\s+\w+\s+where|create\s+(table|index)\s+\w+"
    r"|pragma\s+\w+\s*=|begin\s+immediate)"
)


@dataclass(frozen=True, slots=True)
class Source:
    path: str  # relative to the repository, with forward slashes
    tree: ast.Module

    @property
    def module(self) -> str:
        parts = self.path.removesuffix(".py").split("/")
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    @property
    def package(self) -> str:
        """What a relative import in this file is relative to."""
        is_package = self.path.endswith("/__init__.py")
        return self.module if is_package else self.module.rpartition(".")[0]


def _absolute(source: Source, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = source.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _dynamic(node: ast.Call) -> str | None:
    """The module an `importlib.import_module(...)`/`__import__(...)` call names, or "?"."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name not in ("import_module", "__import__"):
        return None
    first = node.args[0] if node.args else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return "?"  # a computed name: no contract can follow it


def imported(source: Source) -> Iterator[tuple[int, str, str]]:
    """(line, module, else) for every import anywhere in the file: relative, lazy, dynamic alike.

    `from a import b` imports the module `a.b` if there is one, else the name `b` of `a`:
    it yields (line, "a.b", "a") and the caller keeps the first that is a module.
    """
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(source, node)
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}", module
        elif isinstance(node, ast.Call) and (name := _dynamic(node)) is not None:
            yield node.lineno, name, name


def _text_of(node: ast.expr) -> str | None:
    """The literal text of a string expression: constants, f-strings, `+` chains of them."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        return " ? ".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text_of(node.left), _text_of(node.right)
        if left is None and right is None:
            return None
        return f"{left if left is not None else ' ? '}{right if right is not None else ' ? '}"
    return None


def string_constants(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Every string, each f-string and each `+` chain of strings read as one whole text."""
    parts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) or (
            isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
        ):
            parts.update(id(child) for child in ast.iter_child_nodes(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.expr) and id(node) not in parts:
            text = _text_of(node)
            if text is not None:
                yield node.lineno, text


def sql_outside_store(source: Source) -> list[str]:
    if source.path.startswith("fbstampli/store/"):
        return []
    return [
        f"{source.path}:{line}: SQL outside store/: {text[:60]!r}"
        for line, text in string_constants(source.tree)
        if SQL.search(text) or SQL_LOWER.search(text)
    ]


@cache
def package_sources() -> list[Source]:
    return [
        Source(path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    ]


@cache
def _options() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    configure()
    from importlinter.application.use_cases import read_user_options

    options = read_user_options(str(PYPROJECT))
    return options.session_options, options.contracts_options


@cache
def _grimp_graph() -> grimp.ImportGraph:
    return grimp.build_graph("fbstampli", include_external_packages=True, cache_dir=None)


def graph_with(sources: list[Source]) -> tuple[grimp.ImportGraph, list[str]]:
    """grimp's graph plus each import of `sources` it may not hold; and imports no one can check."""
    graph = copy.deepcopy(_grimp_graph())
    unknowable = []
    for source in sources:
        if source.module not in graph.modules:
            graph.add_module(source.module)
        for line, name, otherwise in imported(source):
            if name == "?":
                unknowable.append(f"{source.path}:{line}: imports a module named at run time")
                continue
            top = name.partition(".")[0]
            if top != "fbstampli":
                if top and top not in graph.modules:
                    graph.add_module(top, is_squashed=True)
                target = top
            else:
                target = name if name in graph.modules else otherwise
            if target in graph.modules and target != source.module:
                graph.add_import(
                    importer=source.module, imported=target, line_number=line, line_contents=""
                )
    return graph, unknowable


def broken_contracts(graph: grimp.ImportGraph, only: str | None = None) -> list[str]:
    session, contracts = _options()
    broken = []
    for options in contracts:
        if only is not None and options["id"] != only:
            continue
        contract = CONTRACT_TYPES[options["type"]](
            name=options["name"], session_options=session, contract_options=options
        )
        check = contract.check(copy.deepcopy(graph), verbose=False)
        if not check.kept:
            broken.append(options["id"])
    return broken


def module_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every import cycle between the package's modules (strongly connected sets of two or more).

    `no-cycles` compares siblings; this also sees a package's `__init__` and one of its
    own modules importing each other.
    """
    modules = sorted(m for m in graph.modules if m.startswith("fbstampli"))
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & set(modules)) for m in modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in edges[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            component = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in modules:
        if module not in order:
            visit(module)
    return found


def test_the_package_keeps_its_contract() -> None:
    sources = package_sources()
    assert len(sources) > 40  # the walk found the package, not an empty folder
    graph, unknowable = graph_with(sources)
    assert unknowable == []
    # `lint-imports` at the repository's root shows each broken contract's import chains.
    assert broken_contracts(graph) == []
    assert module_cycles(graph) == []


def test_no_sql_outside_the_store() -> None:
    assert [problem for source in package_sources() for problem in sql_outside_store(source)] == []


@pytest.mark.parametrize(
    ("path", "code", "contract"),
    [
        ("fbstampli/store/outbox.py", "from ..runtime import Runtime", "layers"),
        ("fbstampli/sync/push.py", "from . import ports\nfrom .. import cli", "layers"),
        (
            "fbstampli/sync/push.py",
            'import importlib\nimportlib.import_module("fbstampli.cli")',
            "layers",
        ),
        ("fbstampli/store/outbox.py", "def f():\n    import fbstampli.cli", "layers"),
        (
            "fbstampli/store/runs.py",
            "if TYPE_CHECKING:\n    from fbstampli.services import admin",
            "layers",
        ),
        ("fbstampli/sftp.py", "from fbstampli.runtime import Runtime", "layers"),
        ("fbstampli/listener.py", "from fbstampli.services import webhooks", "layers"),
        ("fbstampli/config.py", "from fbstampli.cli import app", "layers"),
        ("fbstampli/store/outbox.py", "from fbstampli.sync.plan import x", "layers"),
        ("fbstampli/freshbooks/client.py", "from fbstampli.sync import ports", "layers"),
        ("fbstampli/freshbooks/client.py", "from fbstampli.store.credentials import x", "layers"),
        (
            "fbstampli/sync/push.py",
            "from fbstampli.freshbooks.client import X",
            "engine-through-ports",
        ),
        (
            "fbstampli/sync/deliver.py",
            "from fbstampli.sftp import SftpTransport",
            "engine-through-ports",
        ),
        ("fbstampli/cli/sync.py", "from fbstampli.store import Store", "cli-through-services"),
        ("fbstampli/stampli/render.py", "import os", "stampli-pure"),
        ("fbstampli/stampli/parse.py", "from fbstampli.store import Store", "layers"),
        (
            "fbstampli/services/sync.py",
            "from fbstampli.sandbox.freshbooks import X",
            "sandbox-only-in-the-demo",
        ),
        ("fbstampli/errors.py", "from fbstampli.paths import HomePaths", "no-cycles"),
        ("fbstampli/sync/matching.py", "from fbstampli.sync.reconcile import x", "no-cycles"),
        ("fbstampli/store/outbox.py", "import requests", "requests-room"),
        ("fbstampli/store/outbox.py", "from paramiko import SFTPClient", "paramiko-room"),
        ("fbstampli/store/outbox.py", "import typer", "typer-room"),
        ("fbstampli/services/admin.py", "from rich.console import Console", "rich-room"),
        ("fbstampli/cli/output.py", "import sqlcipher3", "sqlcipher3-room"),
    ],
)
def test_a_planted_import_breaks_the_contract(path: str, code: str, contract: str) -> None:
    planted = Source(path, ast.parse(code))
    assert broken_contracts(graph_with([])[0], only=contract) == []
    assert broken_contracts(graph_with([planted])[0], only=contract) == [contract]


def test_a_package_and_its_module_importing_each_other_is_a_cycle() -> None:
    planted = Source("fbstampli/store/__init__.py", ast.parse("from fbstampli.store import outbox"))
    assert module_cycles(graph_with([])[0]) == []
    cycles = module_cycles(graph_with([planted])[0])
    assert any({"fbstampli.store", "fbstampli.store.outbox"} <= set(cycle) for cycle in cycles)


def test_an_import_of_a_computed_name_is_refused() -> None:
    planted = Source("fbstampli/sync/push.py", ast.parse("importlib.import_module(name)"))
    assert graph_with([planted])[1] == [
        "fbstampli/sync/push.py:1: imports a module named at run time"
    ]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("fbstampli/services/doctor.py", 'Q = "SELECT id FROM runs"'),
        ("fbstampli/services/doctor.py", 'Q = "select id, kind from runs"'),
        ("fbstampli/sync/deliver.py", 'q = f"UPDATE batches SET x = {1}"'),
        ("fbstampli/sync/deliver.py", 'Q = "INSERT OR REPLACE INTO kv VALUES (?, ?)"'),
        ("fbstampli/sync/deliver.py", 'Q = "insert or ignore into kv values (?, ?)"'),
        ("fbstampli/sync/push.py", 'Q = "SELECT id " + "FROM runs"'),
        ("fbstampli/sync/push.py", 'Q = "SELECT " + columns + " FROM runs"'),
        ("fbstampli/sync/push.py", 'Q = "delete from events" + " where id = ?"'),
        ("fbstampli/listener.py", 'run("pragma journal_mode = wal")'),
    ],
)
def test_planted_sql_is_caught(path: str, code: str) -> None:
    found = sql_outside_store(Source(path, ast.parse(code)))
    assert len(found) == 1
    assert "SQL outside store/" in found[0]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("fbstampli/store/outbox.py", 'Q = "SELECT id FROM runs"'),
        ("fbstampli/freshbooks/client.py", 'self._call("DELETE", path)'),
        (
            "fbstampli/sync/push.py",
            'log.info("select the bills from FreshBooks, update the set")',
        ),
        ("fbstampli/cli/admin.py", '"delete from the list what is gone"'),
    ],
)
def test_what_the_sql_rule_allows_is_not_flagged(path: str, code: str) -> None:
    assert sql_outside_store(Source(path, ast.parse(code))) == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("fbstampli/cli/sandbox.py", "from fbstampli.sandbox.freshbooks import run_sandbox"),
        ("fbstampli/services/sync.py", "from fbstampli.store import outbox"),
        ("fbstampli/sync/push.py", "from fbstampli.models.behaviour import Learnt"),
        ("fbstampli/store/credentials.py", "from fbstampli.models.token import Token"),
        ("fbstampli/stampli/template.py", "from importlib import resources"),
    ],
)
def test_what_the_layers_allow_is_not_flagged(path: str, code: str) -> None:
    assert broken_contracts(graph_with([Source(path, ast.parse(code))])[0]) == []


def test_lint_imports_itself_reads_relative_imports(tmp_path: Path) -> None:
    """CI's `lint-imports` parses the source on its own: a planted relative import fails it."""
    shutil.copytree(PACKAGE, tmp_path / "fbstampli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    outbox = tmp_path / "fbstampli" / "store" / "outbox.py"
    outbox.write_text(
        outbox.read_text() + "\n\ndef _planted() -> None:\n    from .. import runtime\n"
    )
    run = "import sys; from importlinter.cli import lint_imports as l; sys.exit(l(no_cache=True))"
    result = subprocess.run(
        [sys.executable, "-c", run],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fbstampli.store.outbox -> fbstampli.runtime" in result.stdout


def _doc_layers() -> list[str]:
    """The layer list in ARCHITECTURE.md's "The layers" block; a line ending `:`/`|` goes on."""
    text = ARCHITECTURE.read_text()
    block = text.split("<!-- layers: checked against pyproject.toml -->", 1)[1]
    body = block.split("```", 2)[1].split("\n", 1)[1]
    layers: list[str] = []
    carry = ""
    for line in body.splitlines():
        carry = f"{carry} {line.strip()}".strip()
        if carry and not carry.endswith((":", "|")):
            layers.append(" ".join(carry.split()))
            carry = ""
    return layers


def test_the_map_in_the_docs_is_the_contract() -> None:
    _, contracts = _options()
    (layers,) = [c for c in contracts if c["id"] == "layers"]
    assert _doc_layers() == [" ".join(layer.split()) for layer in layers["layers"]]
