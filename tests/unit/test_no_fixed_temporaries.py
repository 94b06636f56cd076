"""Every whole-file write goes through the one atomic writer (a random, exclusively created
temporary beside the target): a link planted at a name we used to use, or at the target
itself in the moment before the write, is never written through."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fbstampli.installation import BusinessHome, Installation
from fbstampli.options import Options
from fbstampli.services import business as services
from fbstampli.services.sandbox import write_sandbox_config


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    target = tmp_path / "root-owned"
    target.write_text("precious\n")
    os.chmod(target, 0o600)
    return target


def test_the_installation_file_is_never_written_through_a_planted_temporary(
    tmp_path: Path, victim: Path
) -> None:
    folder = tmp_path / "inst"
    folder.mkdir(mode=0o755)
    (folder / ".installation.toml.writing").symlink_to(victim)  # the old fixed name
    Installation(folder).record(BusinessHome("alpha", Path("/srv/alpha"), adopted=True))
    assert victim.read_text() == "precious\n"
    assert Installation(folder).business("alpha").home == Path("/srv/alpha")
    assert os.stat(folder / "installation.toml").st_mode & 0o777 == 0o600


@dataclass
class Sandbox:
    url: str = "http://127.0.0.1:1"
    client_id: str = "id"
    client_secret: str = "secret"


def test_the_sandbox_config_writer_never_writes_through_a_planted_temporary(
    tmp_path: Path, victim: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / ".config.toml.tmp").symlink_to(victim)  # the old fixed name
    sandbox: Any = Sandbox()
    write_sandbox_config(home, sandbox)
    assert victim.read_text() == "precious\n"
    assert 'client_id = "id"' in (home / "config.toml").read_text()
    assert os.stat(home / "config.toml").st_mode & 0o777 == 0o600


def test_config_from_never_writes_through_a_link_planted_as_the_new_config(
    tmp_path: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.toml"
    source.write_text("[sync]\n")
    folder = tmp_path / "inst"
    home = folder / "businesses" / "alpha"
    from fbstampli import runtime

    real = runtime.load_options_settings

    def plant_then_check(options: Options) -> Any:
        # In the moment between the checks and the copy, someone plants a link as the config.
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").symlink_to(victim)
        return real(options)

    monkeypatch.setattr(runtime, "load_options_settings", plant_then_check)
    options = Options(home=folder, env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    services.business_add(options, "alpha", key_source="file", config_from=source)
    assert victim.read_text() == "precious\n"
    assert (home / "config.toml").read_text() == "[sync]\n"
    assert not (home / "config.toml").is_symlink()
