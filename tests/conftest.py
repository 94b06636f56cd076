"""Fixtures every suite shares (an initialised home, a clock, a store) and the summary printer.

A test module that needs another moment, or a clock that must never sleep,
overrides `clock`; `store` then opens with it.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fbstampli.store import Store
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from tests.support import cli
from tests.support.cli import run
from tests.support.fakes import FakeClock
from tests.support.summary import SUMMARY


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` go first (stably): xdist hands out work in this order, so a test of
    three minutes starts at once beside the rest instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised fbstampli home whose key lives in a 0600 file."""
    folder = tmp_path / "home"
    result = run(folder, "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    return folder


@pytest.fixture(autouse=True)
def cli_in_a_process(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tests marked `cli_process` run the CLI as a new process; the rest in this one."""
    cli.in_process.append(request.node.get_closest_marker("cli_process") is None)
    yield
    cli.in_process.pop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    """A new encrypted state file (real SQLCipher) in the test's folder, on `clock`."""
    opened = Store.create(tmp_path / "state.db", StateKey(new_key_hex(), KeySource.FILE), clock)
    yield opened
    opened.close()


SUMMARY_KEY = "fbstampli_reliability_summary"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's summary lines to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[SUMMARY_KEY] = SUMMARY.export()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """On the xdist controller: gather a finished worker's part into the one summary."""
    part = getattr(node, "workeroutput", {}).get(SUMMARY_KEY)
    if part:
        SUMMARY.merge(part)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault, crash, fuzz and secret tests did, one line per area (issue #9)."""
    lines = SUMMARY.render()
    if lines:
        terminalreporter.write_sep("=", "reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
