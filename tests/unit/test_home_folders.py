"""The home's folders are opened beneath the home with O_NOFOLLOW|O_DIRECTORY: a link planted
as `stampli/`, `quarantine/`, `dry-run/` or `logs/` after the home check is still refused."""

import os
from pathlib import Path

import pytest

from fbstampli.errors import ConfigError
from fbstampli.paths import open_home_file, private_folder


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("names", [("stampli",), ("stampli", "quarantine"), ("dry-run",)])
def test_a_link_planted_as_a_home_folder_is_refused_at_opening(
    tmp_path: Path, elsewhere: Path, names: tuple[str, ...]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    if len(names) > 1:
        (home / names[0]).mkdir(mode=0o700)
    (home.joinpath(*names)).symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        private_folder(home.joinpath(*names[:-1]), names[-1])
    assert list(elsewhere.iterdir()) == []


def test_home_folders_are_made_private_when_missing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    assert private_folder(home, "stampli", "quarantine") == home / "stampli" / "quarantine"
    assert os.stat(home / "stampli" / "quarantine").st_mode & 0o777 == 0o700


def test_the_log_file_is_never_opened_through_a_linked_logs_folder(
    tmp_path: Path, elsewhere: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "logs").symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        open_home_file(home / "logs" / "fbstampli.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    assert list(elsewhere.iterdir()) == []
