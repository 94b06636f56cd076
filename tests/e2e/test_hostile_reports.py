"""Reports, backups and terminals facing a hostile world: planted links, hostile Stampli data.

Everything runs through the real CLI against the sandboxes; the attacks are
real symbolic links in the target folder and real Stampli exports on the
in-process SFTP server.
"""

import contextlib
import os
import threading
from pathlib import Path

from fbstampli.sandbox.stampli import StampliSimulator
from tests.e2e.conftest import Connected
from tests.support.cli import run


def pushed(connected: Connected) -> StampliSimulator:
    assert connected.run("push-bills").code == 0
    return StampliSimulator(connected.sftp.root)


# ---- report and backup targets ----------------------------------------------------------------


def test_reconcile_output_never_writes_through_a_link_planted_as_its_temporary(
    connected: Connected, tmp_path: Path
) -> None:
    # Once: the report went into `.report.csv.tmp` -> the other user's file, and that link
    # was then renamed to report.csv.
    shared = tmp_path / "shared"
    shared.mkdir()
    theirs = tmp_path / "theirs.txt"
    theirs.write_text("")
    report = shared / "report.csv"
    (shared / ".report.csv.tmp").symlink_to(theirs)
    pushed(connected)
    result = connected.run("reconcile", "--format", "csv", "--output", str(report))
    assert result.code == 0, result.output
    assert theirs.read_text() == ""
    assert not report.is_symlink()
    assert report.read_text().startswith("fb_bill_id,")
    assert oct(report.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in shared.iterdir()) == [".report.csv.tmp", "report.csv"]


def test_state_backup_never_writes_through_a_link_planted_as_its_temporary(
    tmp_path: Path,
) -> None:
    # The old temporary had a fixed name; it was unlinked first, so the attacker re-plants
    # the link in a tight loop between that unlink and the write.
    home = tmp_path / "home"
    assert run(home, "init", "--key-source", "file").code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "root-owned"
    victim.write_bytes(b"")
    planted = shared / ".backup.db.tmp"
    stop = threading.Event()

    def plant() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileExistsError):
                planted.symlink_to(victim)

    planter = threading.Thread(target=plant, daemon=True)
    planter.start()
    try:
        results = [run(home, "state", "backup", str(shared / "backup.db")) for _ in range(5)]
    finally:
        stop.set()
        planter.join()
    assert victim.read_bytes() == b""
    assert [r.code for r in results] == [0] * 5, [r.output for r in results]
    backup = shared / "backup.db"
    assert not backup.is_symlink()
    assert backup.stat().st_size > 0
    assert os.stat(backup).st_mode & 0o077 == 0
