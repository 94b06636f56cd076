"""Fixtures every suite shares: a fresh home, and an initialised one."""

from pathlib import Path

import pytest

from tests.support.cli import run


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An initialised fbstampli home whose key lives in a 0600 file."""
    folder = tmp_path / "home"
    result = run(folder, "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    return folder
