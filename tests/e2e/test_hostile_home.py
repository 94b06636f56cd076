"""A home another user could write to must not be turned against whoever runs fbstampli in it.

The attacker here is the user that owns the home (a service account, as in the
systemd example) or anyone who can write into it; the victim is root running
fbstampli there. Each test plants a real symbolic link, ownership or mode and
runs the real program as a subprocess, as cron would.
"""

import os
import stat
from pathlib import Path

import pytest

from fbstampli.errors import ConfigError
from fbstampli.lock import run_lock
from tests.support.cli import Result, one_line, run

NOBODY = 65534  # a uid that is not ours, as the service user of the systemd example is


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    result = run(folder, "init", "--key-source", "file")
    assert result.code == 0, result.output
    return folder


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of root's that a planted link points at; it must come out untouched."""
    target = tmp_path / "root-owned"
    target.write_text("precious\n")
    os.chmod(target, 0o600)
    return target


def refused(result: Result, path: Path, fix: str) -> None:
    assert result.code == 2, result.output
    assert one_line(result.stderr), result.stderr
    assert str(path) in result.stderr
    assert fix in result.stderr


def test_init_makes_the_home_private(home: Path) -> None:
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert home.stat().st_uid == os.geteuid()


@pytest.mark.parametrize(
    ("planted", "command"),
    [
        ("run.lock", ("retry", "--failed")),  # once: truncated root's file to a pid
        ("logs/fbstampli.log", ("status",)),  # once: status appended the log to it
        ("config.toml", ("status",)),
        ("state.key", ("status",)),
        ("state.key-source", ("status",)),
    ],
)
def test_a_link_planted_in_the_home_is_refused_and_its_target_left_alone(
    home: Path, victim: Path, planted: str, command: tuple[str, ...]
) -> None:
    link = home / planted
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    refused(run(home, *command), link, f"rm {link}")
    assert victim.read_text() == "precious\n"


def test_a_link_planted_after_the_check_is_still_not_followed(home: Path, victim: Path) -> None:
    # Between the home check and the open: O_NOFOLLOW is what holds then.
    link = home / "run.lock"
    link.symlink_to(victim)
    with pytest.raises(ConfigError, match="symbolic link"), run_lock(link):
        pass
    assert victim.read_text() == "precious\n"


def test_a_hard_link_to_another_file_as_the_run_lock_is_refused(home: Path, victim: Path) -> None:
    os.link(victim, home / "run.lock")
    refused(run(home, "retry", "--failed"), home / "run.lock", "rm ")
    assert victim.read_text() == "precious\n"


def test_a_home_that_is_a_link_is_refused(home: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(home)
    refused(run(alias, "status"), alias, "--home")


def chown_all(home: Path, uid: int) -> None:
    for path in [home, *home.rglob("*")]:
        os.lchown(path, uid, -1)


def test_root_on_another_users_home_is_refused_unless_told(home: Path) -> None:
    chown_all(home, NOBODY)
    refused(run(home, "status"), home, "--allow-foreign-home")
    # Let in: the state opens, and says it is not logged in yet (exit 1, as `gh auth status`).
    for let_in in (
        run(home, "--allow-foreign-home", "auth", "status"),
        run(home, "auth", "status", env={"FBSTAMPLI_ALLOW_FOREIGN_HOME": "1"}),
    ):
        assert let_in.code == 1, let_in.stderr
        assert "not logged in to FreshBooks" in let_in.stderr


def test_a_file_of_a_third_user_in_the_home_is_refused(home: Path) -> None:
    os.chown(home / "config.toml", NOBODY, -1)
    refused(run(home, "status"), home / "config.toml", "chown ")


@pytest.mark.parametrize(
    ("name", "mode"), [("", 0o777), ("config.toml", 0o666), ("state.db", 0o620), ("logs", 0o770)]
)
def test_a_home_or_home_file_others_can_write_is_refused(home: Path, name: str, mode: int) -> None:
    path = home / name if name else home
    os.chmod(path, mode)  # the attack under test
    refused(run(home, "status"), path, f"chmod go-w {path}")


def test_a_key_file_others_can_read_is_refused(home: Path) -> None:
    key = home / "state.key"
    os.chmod(key, 0o644)
    refused(run(home, "status"), key, f"chmod 600 {key}")


def test_doctor_names_a_home_or_key_other_users_can_read(home: Path) -> None:
    os.chmod(home, 0o755)  # noqa: S103 - the weakness doctor must name
    result = run(home, "doctor")
    assert result.code == 1
    line = next(x for x in result.stdout.splitlines() if " home:" in x)
    assert line.startswith("FAIL")
    assert f"chmod 700 {home}" in line
    os.chmod(home, 0o700)
    assert next(x for x in run(home, "doctor").stdout.splitlines() if " home:" in x).startswith(
        "ok"
    )


def test_an_environment_key_is_rotated_by_following_the_message_word_for_word(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    old = "cd" * 32
    assert run(home, "init", "--key-source", "env", env={"FBSTAMPLI_DB_KEY": old}).code == 0
    refused = run(home, "key", "rotate", env={"FBSTAMPLI_DB_KEY": old})
    assert refused.code == 2
    assert one_line(refused.stderr)
    # The steps the message gives, in its order:
    (home / "state.key").write_text(old + "\n")
    os.chmod(home / "state.key", 0o600)
    (home / "state.key-source").write_text("file\n")
    assert f"write the current key to {home}/state.key" in refused.stderr
    rotated = run(home, "key", "rotate")
    assert rotated.code == 0, rotated.output
    new = (home / "state.key").read_text().strip()
    assert new != old
    (home / "state.key-source").write_text("env\n")
    (home / "state.key").unlink()
    opened = run(home, "auth", "status", env={"FBSTAMPLI_DB_KEY": new})
    assert opened.code == 1, opened.stderr  # decrypted: it says only "not logged in"
    assert "not logged in to FreshBooks" in opened.stderr
    assert run(home, "auth", "status", env={"FBSTAMPLI_DB_KEY": old}).code == 4  # old key dead
