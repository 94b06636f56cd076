"""Fixtures every suite shares (an initialised home, a clock, a store) and the summary printer.

A test module that needs another moment, or a clock that must never sleep,
overrides `clock`; `store` then opens with it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from fbstampli.store import Store
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from tests.support.cli import run
from tests.support.fakes import FakeClock
from tests.support.summary import SUMMARY


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised fbstampli home whose key lives in a 0600 file."""
    folder = tmp_path / "home"
    result = run(folder, "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    return folder


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    """A new encrypted state file (real SQLCipher) in the test's folder, on `clock`."""
    opened = Store.create(tmp_path / "state.db", StateKey(new_key_hex(), KeySource.FILE), clock)
    yield opened
    opened.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault, crash, fuzz and secret tests did, one line per area (issue #9)."""
    lines = SUMMARY.render()
    if lines:
        terminalreporter.write_sep("=", "reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
