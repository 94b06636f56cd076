"""doctor gives the fix that works, and one failure never hides the other checks (issue #24,
item 9).

A full disk is a real one for the process: a file-size limit (RLIMIT_FSIZE) makes every
write of the state fail as on a full disk (tests/e2e/test_disk_full.py). The room doctor
reports is the real file system's, checked here against `df`. A state or key another user
owns is made so with a real `chown` (the tests run as root, as CI does).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from fbstampli.access import Space, space_of
from fbstampli.options import Options
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.doctor_local import NEED_THE_STATE, disk_check, room_needed
from fbstampli.services.sandbox import connect_home
from tests.e2e.conftest import Connected
from tests.e2e.test_disk_full import run_on_a_full_disk
from tests.support.cli import Result, one_line

NOBODY = 65534
EVERY_CHECK = (
    "config",
    "state file",
    "home",
    "disk space",
    *NEED_THE_STATE,
    "template",
    "clock",
)


@pytest.fixture
def connected(tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer) -> Connected:
    home = tmp_path / "home"
    connect_home(Options(home=home, env={}), freshbooks, sftp_server)
    return Connected(home, freshbooks, sftp_server)


def lines_of(result: Result) -> dict[str, list[str]]:
    """doctor's lines by check name (a name may come twice: `state file` exists, then fails)."""
    lines: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        lines.setdefault(line[5:].split(":", 1)[0], []).append(line)
    return lines


def df_mount(path: Path) -> str:
    """Where `df` says `path` is mounted: the oracle for the file system doctor names."""
    shown = subprocess.run(
        ["df", "--output=target", str(path)], capture_output=True, text=True, check=True
    )
    return shown.stdout.splitlines()[-1].strip()


def test_doctor_on_a_full_disk_says_free_space_on_which_file_system_and_runs_every_check(
    connected: Connected,
) -> None:
    result = run_on_a_full_disk(connected.home, 1_000, "doctor")
    assert result.code == 1, result.stderr
    lines = lines_of(result)
    assert set(EVERY_CHECK) <= set(lines), result.stdout
    failed = lines["state file"][-1]
    assert failed.startswith("FAIL"), failed
    assert "the disk is full or failing" in failed
    assert f"free space on {df_mount(connected.home)} (" in failed
    assert " free of " in failed
    assert "key" not in failed.split("->")[1]  # never "restore the key or a backup"
    assert "restore" not in result.stdout
    assert lines["template"] == ["ok   template: the Stampli template is valid"]
    for name in NEED_THE_STATE:
        assert lines[name] == [f"skip {name}: skipped: the state could not be opened"]


def test_a_full_disk_in_a_cron_run_names_the_file_system_and_its_room(
    connected: Connected,
) -> None:
    result = run_on_a_full_disk(connected.home, 1_000, "-q", "sync")
    assert result.code == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("fbstampli: error: cannot write ")
    assert f"the disk is full or failing; free space on {df_mount(connected.home)} (" in line
    assert "key" not in line


@pytest.mark.parametrize("name", ["state.db", "state.key"])
def test_doctor_tells_chown_for_a_state_another_user_owns_and_runs_every_check(
    connected: Connected, name: str
) -> None:
    owned = connected.home / name
    os.chown(owned, NOBODY, -1)  # as a run under another user leaves it
    result = connected.run("doctor")
    assert result.code == 1, result.stderr
    lines = lines_of(result)
    assert set(EVERY_CHECK) <= set(lines), result.stdout
    (home,) = lines["home"]
    assert home.startswith(f"FAIL home: {owned} belongs to user 'nobody'"), home
    assert home.endswith(f"-> give it back, as root: `chown root {owned}`"), home
    assert "remove" not in result.stdout
    assert lines["disk space"][0].startswith("ok   disk space:")
    assert lines["template"] == ["ok   template: the Stampli template is valid"]
    assert lines["key"] == ["skip key: skipped: the home check failed"]
    assert os.stat(owned).st_uid == NOBODY  # doctor only looks


def test_a_cron_run_on_a_state_another_user_owns_is_told_chown_not_remove(
    connected: Connected,
) -> None:
    state = connected.home / "state.db"
    os.chown(state, NOBODY, -1)
    result = connected.run("-q", "sync")
    assert result.code == 2
    assert one_line(result.stderr)
    assert result.stderr.strip() == (
        f"fbstampli: error: {state} belongs to user 'nobody', not to user 'root' who owns the "
        f"home; give it back, as root: `chown root {state}`"
    )


def test_doctor_with_invalid_settings_still_checks_the_home_disk_and_clock(
    connected: Connected,
) -> None:
    result = connected.run("doctor", env={"FBSTAMPLI_SYNC_FULL_SWEEP_HOURS": "soon"})
    assert result.code == 1
    lines = lines_of(result)
    assert lines["config"][0].startswith("FAIL config:")
    assert set(EVERY_CHECK) <= set(lines), result.stdout
    assert lines["home"][0].startswith("ok   home:")
    assert lines["disk space"][0].startswith("ok   disk space:")
    assert lines["key"] == ["skip key: skipped: the config check failed"]


def test_the_disk_check_fails_below_twice_the_state_and_names_the_room(
    connected: Connected,
) -> None:
    """The room is measured at the edge (statvfs); here the measure says what a nearly full
    file system would, around the line the state's real size draws."""
    paths = Options(home=connected.home, env={}).paths()
    needed = room_needed(paths.state.stat().st_size)
    at_the_line = disk_check(paths, measure=lambda path: Space("/srv", "xfs", needed, 10**10))
    assert at_the_line.ok
    short = disk_check(paths, measure=lambda path: Space("/srv", "xfs", needed - 1, 10**10))
    assert not short.ok
    assert short.detail.startswith("/srv (xfs): ")
    assert " free of 10 GB; the state (" in short.detail
    assert short.fix == "free space on /srv"


def test_the_room_is_that_of_the_file_system_df_names(tmp_path: Path) -> None:
    space = space_of(tmp_path / "not" / "made" / "yet")
    assert space is not None
    assert space.mount == df_mount(tmp_path)
    status = os.statvfs(tmp_path)
    assert 0 < space.free <= status.f_blocks * status.f_frsize == space.total
