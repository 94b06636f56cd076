"""A state knows what it is: an empty, short or overwritten state file is damaged, said so
with the way back, never taken for a new state or for a wrong key."""

import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected


def inbound_count(connected: Connected) -> int:
    return len(connected.inbound_files())


def damage(state: Path, how: str) -> None:
    size = state.stat().st_size
    if how == "empty":
        state.write_bytes(b"")
    elif how == "cut":
        with state.open("r+b") as writer:
            writer.truncate(size - 1000)
    elif how == "cut at a page":  # SQLCipher alone calls this a wrong key
        with state.open("r+b") as writer:
            writer.truncate(size // 2 // 4096 * 4096)
    else:  # overwritten with zeros, whole pages
        state.write_bytes(bytes(size))
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["empty", "cut", "cut at a page", "zeros"])
def test_a_damaged_state_is_named_and_nothing_is_sent_again(connected: Connected, how: str) -> None:
    assert connected.run("sync").code == 0
    sent = inbound_count(connected)
    assert connected.run("state", "backup", str(connected.home.parent / "good.db")).code == 0
    state = connected.home / "state.db"
    damage(state, how)
    before = state.read_bytes()

    result = connected.run("-q", "sync")
    assert result.code == 4, result.stderr
    assert result.stderr.startswith(f"fbstampli: error: {state} is damaged: ")
    assert "state restore" in result.stderr
    assert "key is not at fault" in result.stderr
    assert state.read_bytes() == before  # left as found
    assert inbound_count(connected) == sent

    checks = {c["name"]: c for c in json.loads(connected.run("doctor", "--json").stdout)}
    assert checks["state file"]["ok"] is False
    assert "damaged" in checks["state file"]["detail"]
    assert checks["key"]["ok"] is True  # not blamed on the key: skipped, the state did not open

    restored = connected.run("state", "restore", str(connected.home.parent / "good.db"))
    assert restored.code == 0, restored.stderr
    assert connected.run("sync").code == 0
    assert inbound_count(connected) == sent


def test_a_wrong_key_is_still_called_a_wrong_key(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    result = connected.run("-q", "sync", env={"FBSTAMPLI_DB_KEY": "ab" * 32})
    assert result.code == 4
    assert "cannot be decrypted" in result.stderr
    assert "damaged" not in result.stderr


def test_init_still_creates_a_state_beside_nothing(tmp_path: Path) -> None:
    from tests.support.cli import run

    home = tmp_path / "home"
    assert run(home, "init", "--key-source", "file").code == 0
    assert run(home, "status").code in (0, 1)
    assert os.path.getsize(home / "state.db") > 0
