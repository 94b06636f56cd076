"""Fixtures every suite shares (a fresh home, an initialised one) and the summary printer."""

from pathlib import Path

import pytest

from tests.support.cli import run
from tests.support.summary import SUMMARY


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised fbstampli home whose key lives in a 0600 file."""
    folder = tmp_path / "home"
    result = run(folder, "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    return folder


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault, crash, fuzz and secret tests did, one line per area (issue #9)."""
    lines = SUMMARY.render()
    if lines:
        terminalreporter.write_sep("=", "reliability summary")
        for line in lines:
            terminalreporter.write_line(line)
