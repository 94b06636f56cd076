"""Every business home gets the global home's check, whichever path opens it.

The attacker is an unprivileged user (here uid 65534, `nobody`, owning the
files as that user would) who owns one business home of an installation, or
the installation itself; the victim is root running `sync --all`,
`status --all`, `serve-webhook --all`, `business add --adopt` or
`--installation` / `FBSTAMPLI_INSTALLATION` over it. Real program, real files.
"""

import os
from pathlib import Path

import pytest

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.services.webhooks_all import installation_listener
from tests.e2e.conftest import Connected
from tests.support.cli import Result, one_line, run

NOBODY = 65534


def chown_all(folder: Path, uid: int) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, -1)


@pytest.fixture
def installation(tmp_path: Path) -> Path:
    """An installation folder with two business homes, `mine` and `hers`."""
    folder = tmp_path / "inst"
    for name in ("mine", "hers"):
        added = run(folder, "business", "add", name, "--key-source", "file")
        assert added.code == 0, added.output
    return folder


@pytest.fixture
def root_only(tmp_path: Path) -> Path:
    """A folder of root's that a link in her home points at; it must stay empty."""
    folder = tmp_path / "root-only"
    folder.mkdir(mode=0o700)
    return folder


def hers_turned_hostile(installation: Path, root_only: Path) -> Path:
    """Her home given to her, with `logs` replaced by a link into root's folder."""
    home = installation / "businesses" / "hers"
    logs = home / "logs"
    for path in logs.iterdir():
        path.unlink()
    logs.rmdir()
    logs.symlink_to(root_only)
    chown_all(home, NOBODY)
    return home


def test_sync_all_refuses_a_business_home_of_another_user_and_writes_nothing_through_it(
    installation: Path, root_only: Path
) -> None:
    home = hers_turned_hostile(installation, root_only)
    result = run(installation, "sync", "--all")
    assert "business hers: exit 2" in result.stderr, result.output
    assert str(home) in result.stderr
    assert "--allow-foreign-home" in result.stderr
    assert list(root_only.iterdir()) == []  # once: root created its log file there
    told = run(installation, "--allow-foreign-home", "sync", "--all")
    assert "business hers: exit 2" in told.stderr, told.output
    assert f"rm {home / 'logs'}" in told.stderr  # the link is refused even when told
    assert list(root_only.iterdir()) == []


def test_status_all_refuses_a_business_home_of_another_user(
    installation: Path, root_only: Path
) -> None:
    hers_turned_hostile(installation, root_only)
    result = run(installation, "status", "--all")
    assert result.code != 0
    assert "belongs to user 'nobody'" in result.output, result.output
    assert list(root_only.iterdir()) == []


def test_serve_webhook_all_leaves_out_a_business_home_of_another_user(
    installation: Path, root_only: Path
) -> None:
    hers_turned_hostile(installation, root_only)
    report = RunReport("serve-webhook")
    options = Options(home=installation, env={})
    with installation_listener(options, host="127.0.0.1", port=0, report=report) as listener:
        assert sorted(listener.listeners) == ["mine"]
    assert any("business hers not served" in p and "belongs to" in p for p in report.problems)
    assert list(root_only.iterdir()) == []


def refused(result: Result, path: Path, fix: str) -> None:
    assert result.code == 2, result.output
    assert one_line(result.stderr), result.stderr
    assert str(path) in result.stderr
    assert fix in result.stderr


def test_business_add_adopt_refuses_another_users_home_unless_told(
    installation: Path, tmp_path: Path
) -> None:
    old = tmp_path / "her-home"
    assert run(old, "init", "--key-source", "file").code == 0
    chown_all(old, NOBODY)
    refused(run(installation, "business", "add", "evil", "--adopt", str(old)), old, "--allow")
    assert str(old) not in (installation / "installation.toml").read_text()
    told = run(installation, "--allow-foreign-home", "business", "add", "evil", "--adopt", str(old))
    assert told.code == 0, told.output


@pytest.mark.parametrize("how", ["flag", "env"])
def test_another_users_installation_is_refused_unless_told(
    installation: Path, tmp_path: Path, how: str
) -> None:
    chown_all(installation, NOBODY)
    mine = tmp_path / "my-home"
    given = (
        {"args": ("--installation", str(installation)), "env": None}
        if how == "flag"
        else {"args": (), "env": {"FBSTAMPLI_INSTALLATION": str(installation)}}
    )
    args: tuple[str, ...] = given["args"]  # type: ignore[assignment]
    env: dict[str, str] | None = given["env"]  # type: ignore[assignment]
    result = run(mine, *args, "status", "--all", env=env)
    refused(result, installation, "--allow-foreign-home")
    listed = run(mine, *args, "business", "list", env=env)
    refused(listed, installation, "--allow-foreign-home")
    told = run(mine, *args, "--allow-foreign-home", "business", "list", env=env)
    assert told.code == 0, told.output


@pytest.mark.parametrize("attack", ["file owner", "file mode", "folder mode", "file link"])
def test_an_installation_file_another_user_could_change_is_refused(
    installation: Path, tmp_path: Path, attack: str
) -> None:
    file = installation / "installation.toml"
    if attack == "file owner":
        os.chown(file, NOBODY, -1)
        named, fix = file, "--allow-foreign-home"
    elif attack == "file mode":
        os.chmod(file, 0o666)  # noqa: S103 - the weakness under test
        named, fix = file, f"chmod go-w {file}"
    elif attack == "folder mode":
        os.chmod(installation, 0o777)  # noqa: S103 - the weakness under test
        named, fix = installation, f"chmod go-w {installation}"
    else:
        elsewhere = tmp_path / "planted.toml"
        elsewhere.write_text(file.read_text())
        file.unlink()
        file.symlink_to(elsewhere)
        named, fix = file, "symbolic link"
    refused(run(installation, "business", "list"), named, fix)
    refused(run(installation, "sync", "--all"), named, fix)


@pytest.mark.parametrize(
    "home", ["../her-home", "businesses/../../her-home", "/srv/../tmp/her-home", "out/"]
)
def test_a_home_that_leaves_the_installation_is_refused(
    installation: Path, tmp_path: Path, home: str
) -> None:
    her = tmp_path / "her-home"
    assert run(her, "init", "--key-source", "file").code == 0
    (installation / "out").symlink_to(her)  # a relative home through a link leaves too
    (installation / "installation.toml").write_text(f'[businesses.evil]\nhome = "{home}"\n')
    os.chmod(installation / "installation.toml", 0o644)
    result = run(installation, "sync", "--all")
    assert result.code == 2, result.output
    assert "business evil's home" in result.stderr
    assert not (her / "logs" / "fbstampli.log").exists()


@pytest.mark.parametrize("planted", ["stampli", "dry-run", "logs"])
def test_a_link_planted_as_a_home_folder_is_refused_even_with_allow_foreign_home(
    connected: Connected, root_only: Path, planted: str
) -> None:
    folder = connected.home / planted
    if folder.is_dir():
        for path in folder.rglob("*"):
            path.unlink()
        folder.rmdir()
    folder.symlink_to(root_only)
    chown_all(connected.home, NOBODY)
    result = connected.run("--allow-foreign-home", "sync")
    refused(result, folder, f"rm {folder}")
    assert list(root_only.iterdir()) == []  # once: root wrote her export file there
