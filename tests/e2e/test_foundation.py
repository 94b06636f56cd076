"""The foundation through the real CLI: init, the encrypted state, keys, lock, errors."""

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fbstampli.clock import SystemClock
from fbstampli.errors import ConfigError, StateUnusableError
from fbstampli.store import Store
from fbstampli.store.keys import resolve_key
from fbstampli.store.schema import latest_version
from tests.support.cli import cli_env, one_line, run

ENV_KEY = "0123456789abcdef" * 4


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_creates_private_home_config_state_and_key_file(tmp_path: Path) -> None:
    home = tmp_path / "h"
    result = run(home, "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"Created {home}")  # said, even when piped
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("state.db", "state.key", "config.toml"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


def test_init_twice_leaves_state_and_key_untouched(home: Path) -> None:
    before = {name: digest(home / name) for name in ("state.db", "state.key", "config.toml")}
    result = run(home, "init")
    assert result.code == 0, result.stderr
    assert before == {name: digest(home / name) for name in before}


def test_plain_sqlite_cannot_read_the_state(home: Path) -> None:
    with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
        sqlite3.connect(home / "state.db").execute("SELECT * FROM sqlite_master").fetchall()


def test_state_key_from_environment(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {"FBSTAMPLI_DB_KEY": ENV_KEY}
    assert run(home, "init", env=env).code == 0
    assert not (home / "state.key").exists()
    assert run(home, "init", env=env).code == 0
    missing = run(home, "init")
    assert missing.code == 4
    assert "FBSTAMPLI_DB_KEY" in missing.stderr
    assert one_line(missing.stderr)


def test_state_key_from_keyring(tmp_path: Path) -> None:
    home = tmp_path / "h"
    env = {
        "PYTHON_KEYRING_BACKEND": "keyrings_for_tests.FileKeyring",
        "FBSTAMPLI_TEST_KEYRING_DIR": str(tmp_path),
    }
    assert run(home, "init", "--key-source", "keyring", env=env).code == 0
    assert not (home / "state.key").exists()
    assert (tmp_path / "keyring.json").exists()
    assert run(home, "init", env=env).code == 0
    gone = run(home, "init", env={**env, "FBSTAMPLI_TEST_KEYRING_DIR": str(tmp_path / "none")})
    assert gone.code == 4
    assert "keyring" in gone.stderr


def test_hanging_keyring_becomes_exit_4_not_a_hung_job(tmp_path: Path) -> None:
    home = tmp_path / "h"
    good = {
        "PYTHON_KEYRING_BACKEND": "keyrings_for_tests.FileKeyring",
        "FBSTAMPLI_TEST_KEYRING_DIR": str(tmp_path),
    }
    assert run(home, "init", "--key-source", "keyring", env=good).code == 0
    hung = run(
        home,
        "init",
        env={"PYTHON_KEYRING_BACKEND": "keyrings_for_tests.HangingKeyring"},
        timeout=60,
    )
    assert hung.code == 4
    assert "did not answer" in hung.stderr
    assert "FBSTAMPLI_DB_KEY" in hung.stderr


def test_wrong_key_exits_4_and_leaves_file_byte_for_byte(home: Path) -> None:
    before = digest(home / "state.db")
    result = run(home, "init", env={"FBSTAMPLI_DB_KEY": ENV_KEY})
    assert result.code == 4
    assert one_line(result.stderr)
    assert "left unchanged" in result.stderr
    assert "hmac" not in result.stderr.lower()
    assert digest(home / "state.db") == before


def test_missing_key_file_names_the_fix(home: Path) -> None:
    (home / "state.key").rename(home / "elsewhere.key")
    result = run(home, "init")
    assert result.code == 4
    assert "state.key is missing" in result.stderr


def test_corrupt_state_exits_4(home: Path) -> None:
    data = bytearray((home / "state.db").read_bytes())
    data[0:4096] = os.urandom(4096)
    (home / "state.db").write_bytes(bytes(data))
    result = run(home, "init")
    assert result.code == 4
    assert one_line(result.stderr)


def test_migrations_run_once_and_newer_schema_is_refused(home: Path) -> None:
    key = resolve_key(home / "state.db", {})
    store = Store.open(home / "state.db", key, SystemClock())
    assert int(store.query_one("PRAGMA user_version")[0]) == latest_version()
    store.put_value("marker", "kept")
    store.close()
    store = Store.open(home / "state.db", key, SystemClock())  # no migration re-runs over data
    assert store.get_value("marker") == "kept"
    store.execute(f"PRAGMA user_version = {latest_version() + 1}")
    store.close()
    with pytest.raises(StateUnusableError, match="newer fbstampli"):
        Store.open(home / "state.db", key, SystemClock())
    assert run(home, "init").code == 4


def test_state_is_never_created_over_an_existing_file(home: Path) -> None:
    key = resolve_key(home / "state.db", {})
    with pytest.raises(ConfigError, match="never replaced"):
        Store.create(home / "state.db", key, SystemClock())


def test_config_errors_name_every_bad_key(home: Path) -> None:
    (home / "config.toml").write_text(
        '[sync]\nmax_attempts = "many"\nbogus = 1\n'
        '[freshbooks]\napi_url = "ftp://x"\nauth_url = "https://[::1"\n[nope]\na = 1\n'
        '[webhook]\nhost = ""\n'
    )
    result = run(home, "init", env={"FBSTAMPLI_WEBHOOK_PORT": "70000"})
    assert result.code == 2
    assert one_line(result.stderr)
    for key in (
        "sync.max_attempts",
        "sync.bogus",
        "freshbooks.api_url",
        "freshbooks.auth_url",
        "nope",
        "webhook.port",
        "webhook.host",  # empty would listen on every interface
    ):
        assert key in result.stderr


def test_config_that_is_not_toml_is_a_usage_error(home: Path) -> None:
    (home / "config.toml").write_text("[sync\n")
    result = run(home, "init")
    assert result.code == 2
    assert "not valid TOML" in result.stderr


def hold_lock_in_another_process(home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from fbstampli.lock import run_lock\n"
            "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(home / "run.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(home),
    )


def test_second_concurrent_run_exits_75(home: Path) -> None:
    holder = hold_lock_in_another_process(home)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        result = run(home, "key", "rotate")
        assert result.code == 75, result.stderr
        assert one_line(result.stderr)
        assert f"pid {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.communicate()


def test_lock_is_released_when_the_holder_is_killed(home: Path) -> None:
    holder = hold_lock_in_another_process(home)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.communicate()
    deadline = time.monotonic() + 5
    from fbstampli.lock import run_lock

    with run_lock(home / "run.lock", wait_seconds=max(0.0, deadline - time.monotonic())):
        pass


def registered_commands() -> list[str]:
    """Every leaf command the app registers, e.g. "auth login", read from typer itself."""
    import typer.main

    from fbstampli.cli import app

    def walk(group: Any, prefix: str) -> list[str]:
        names = []
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                if command.invoke_without_command:  # `sandbox freshbooks` serves; its commands edit
                    names.append(f"{prefix}{name}")
                names += walk(command, f"{prefix}{name} ")
            else:
                names.append(f"{prefix}{name}")
        return names

    return walk(typer.main.get_command(app), "")


def test_every_command_has_help_and_is_in_the_readme(tmp_path: Path) -> None:
    top = run(tmp_path, "--help")
    assert top.code == 0
    commands = registered_commands()
    assert {"init", "auth login", "sandbox freshbooks", "sandbox sftp", "key rotate"} <= set(
        commands
    )
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for command in commands:
        result = run(tmp_path, *command.split(), "--help")
        assert result.code == 0, command
        assert "Usage:" in result.stdout, command
        assert len(result.stdout.splitlines()) > 3, command
        assert f"fbstampli {command}" in readme, f"README does not mention `fbstampli {command}`"


def test_template_check_accepts_the_example_and_names_a_bad_field(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "stampli-template.toml"
    good = run(tmp_path, "template", "check", str(example))
    assert good.code == 0, good.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(example.read_text().replace('source = "bill_number"', 'source = "bill_nmber"'))
    result = run(tmp_path, "template", "check", str(bad))
    assert result.code == 2
    assert one_line(result.stderr)
    assert "bill_nmber" in result.stderr
