"""What fbstampli writes or reads on the operator's say-so is never turned against the home:
`doctor --api-report` gets the output-path checks of `state backup`, and `state restore`
leaves the backup it reads exactly as it was."""

import hashlib
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import one_line


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    target = tmp_path / "root-owned"
    target.write_text("precious\n")
    os.chmod(target, 0o600)
    return target


def test_api_report_never_replaces_the_homes_files_links_or_devices(
    connected: Connected, victim: Path, tmp_path: Path
) -> None:
    key = connected.home / "state.key"
    key_before = key.read_bytes()
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    for target in (key, connected.home / "state.db", link, Path("/dev/null")):
        result = connected.run("doctor", "--api-report", str(target))
        assert result.code == 2, (target, result.output)
        assert one_line(result.stderr), result.stderr
        assert f"--api-report {target}" in result.stderr
    assert key.read_bytes() == key_before  # once: replaced by the report, the state lost
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()
    assert connected.run("auth", "status").code == 0
    good = tmp_path / "api-report.json"
    written = connected.run("doctor", "--api-report", str(good))
    assert written.code in (0, 1), written.output
    assert good.read_text().startswith("{")
    assert os.stat(good).st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".api-report.json.*"))  # no temporary left behind


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_state_restore_leaves_its_backup_byte_for_byte_and_mode_unchanged(
    connected: Connected, tmp_path: Path
) -> None:
    assert connected.run("sync").code == 0
    backup = tmp_path / "backup.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    os.chmod(backup, 0o644)
    before = (sha256(backup), os.stat(backup).st_mode, sorted(p.name for p in tmp_path.iterdir()))
    restored = connected.run("state", "restore", str(backup))
    assert restored.code == 0, restored.output
    after = (sha256(backup), os.stat(backup).st_mode, sorted(p.name for p in tmp_path.iterdir()))
    assert after == before  # once: opened read-write, migrated, WAL beside it, chmod 0600
    assert connected.run("sync").code == 0  # the restored state works
