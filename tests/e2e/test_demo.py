"""The README's first command: `fbstampli demo` on a machine with no accounts."""

from pathlib import Path

import pytest

from tests.support.cli import run

# In a new process: the demo's servers and log files are left to process exit.
pytestmark = pytest.mark.cli_process


def test_demo_runs_the_whole_flow_and_cleans_up(tmp_path: Path) -> None:
    result = run(tmp_path / "unused-home", "demo", "--bills", "10", env={"TMPDIR": str(tmp_path)})
    assert result.code == 0, result.stderr
    assert "1-vendors.csv" in result.stdout
    assert "2-bills.csv" in result.stdout
    assert "0 new files" in result.stdout  # the second push sent nothing twice
    assert "changed in FreshBooks" in result.stdout
    assert [path.name for path in tmp_path.iterdir()] == []  # nothing left behind


def test_demo_keep_leaves_the_home_for_inspection(tmp_path: Path) -> None:
    result = run(
        tmp_path / "unused-home", "demo", "--bills", "5", "--keep", env={"TMPDIR": str(tmp_path)}
    )
    assert result.code == 0, result.stderr
    kept = [path for path in tmp_path.iterdir() if path.name.startswith("fbstampli-demo-")]
    assert len(kept) == 1
    assert (kept[0] / "home" / "state.db").exists()
