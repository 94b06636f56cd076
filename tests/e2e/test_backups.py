"""Backups without remembering to take them: `sync` keeps rotating encrypted backups in the
home, `doctor` lists them, `state restore` without a file picks one the marker accepts."""

import json
import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.conftest import Connected
from tests.support.cli import one_line


def backups(connected: Connected) -> list[Path]:
    folder = connected.home / "backups"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def named_at(moment: datetime) -> str:
    return f"state-{moment:%Y%m%dT%H%M%SZ}.db"


def age(path: Path, days: float) -> Path:
    """The backup made `days` older, as its name (in UTC) says when it was taken."""
    older = path.with_name(named_at(datetime.now(UTC) - timedelta(days=days)))
    path.rename(older)
    return older


def edit_a_bill(connected: Connected, number: str) -> None:
    bill_id = sorted(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number=number)


def test_sync_writes_a_private_encrypted_backup_once_the_last_is_a_day_old(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    (first,) = backups(connected)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    assert not first.read_bytes().startswith(b"SQLite format 3")  # encrypted
    assert connected.run("sync").code == 0
    assert backups(connected) == [first]  # not due yet
    aged = age(first, 1.1)
    assert connected.run("sync").code == 0
    assert len(backups(connected)) == 2
    assert aged in backups(connected)
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_only_the_newest_backups_are_kept(connected: Connected) -> None:
    env = {"FBSTAMPLI_STATE_BACKUPS_KEPT": "3"}
    assert connected.run("sync", env=env).code == 0
    (first,) = backups(connected)
    for days in (2, 3, 4, 5):
        shutil.copy(first, first.with_name(named_at(datetime.now(UTC) - timedelta(days=days))))
    age(first, 1.5)
    assert connected.run("sync", env=env).code == 0
    kept = backups(connected)
    assert len(kept) == 3
    newest = max(kept)
    assert datetime.now(UTC) - datetime.strptime(newest.name, "state-%Y%m%dT%H%M%SZ.db").replace(
        tzinfo=UTC
    ) < timedelta(minutes=5)
    assert min(kept).name > named_at(datetime.now(UTC) - timedelta(days=2.5))  # oldest went


def test_no_backups_are_written_when_none_are_to_be_kept(connected: Connected) -> None:
    assert connected.run("sync", env={"FBSTAMPLI_STATE_BACKUPS_KEPT": "0"}).code == 0
    assert backups(connected) == []


def test_doctor_lists_the_backups_with_their_age_and_size(connected: Connected) -> None:
    checks = {c["name"]: c for c in json.loads(connected.run("doctor", "--json").stdout)}
    assert checks["backups"]["ok"] is True
    assert "none" in checks["backups"]["detail"]
    assert connected.run("sync").code == 0
    (first,) = backups(connected)
    age(first, 3)
    checks = {c["name"]: c for c in json.loads(connected.run("doctor", "--json").stdout)}
    detail = checks["backups"]["detail"]
    assert "1 in " in detail
    assert "3 d old" in detail
    assert "MB)" in detail
    assert checks["backups"]["ok"] is False  # the newest is 3 days old: is cron running?
    assert "cron" in checks["backups"]["fix"]


def test_restore_without_a_file_takes_the_newest_backup_the_marker_accepts(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    sent = connected.inbound_files()
    (first,) = backups(connected)
    state = connected.home / "state.db"
    state.write_bytes(b"")  # damaged
    assert connected.run("-q", "sync").code == 4

    asked = connected.run("state", "restore")  # no terminal: --yes is needed
    assert asked.code == 2
    assert "--yes" in asked.stderr
    restored = connected.run("state", "restore", "--yes")
    assert restored.code == 0, restored.output
    assert str(first) in restored.stdout
    assert "marker accepts" in restored.output
    assert connected.run("sync").code == 0
    assert connected.inbound_files() == sent  # nothing sent again


def test_restore_without_a_file_says_when_no_backup_is_accepted(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    (first,) = backups(connected)
    edit_a_bill(connected, "AFTER-THE-BACKUP")
    assert connected.run("sync").code == 0  # delivered; the backup is not due again yet
    assert backups(connected) == [first]
    result = connected.run("state", "restore", "--yes")
    assert result.code == 4, result.output
    assert one_line(result.stderr)
    assert "is accepted by the marker" in result.stderr
    assert f"`fbstampli state restore {first}`" in result.stderr
    assert "`fbstampli state adopt-remote`" in result.stderr
