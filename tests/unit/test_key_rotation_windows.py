"""The two windows a killed key rotation can leave, set up exactly and recovered."""

from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.store import Store, open_state, replace_state
from fbstampli.store.keys import KeySource, create_key, stage_new_key


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    key = create_key(path, KeySource.FILE, {})
    store = Store.create(path, key, SystemClock())
    with store.transaction():
        store.put_value("marker", "kept")
    store.close()
    return path


def rotate_until_swap(state: Path, *, swap: bool) -> str:
    store, key = open_state(state, {}, SystemClock())
    staged = stage_new_key(state, key.source)
    store.backup_to(state.with_name("state.db.rotating"), staged)
    store.close()
    if swap:
        replace_state(state.with_name("state.db.rotating"), state)
    return staged.hex


def test_killed_after_the_swap_opens_with_the_staged_key_and_promotes_it(state: Path) -> None:
    new_hex = rotate_until_swap(state, swap=True)
    reader, key = open_state(state, {}, SystemClock(), recover=False)  # a lock-free reader
    assert reader.get_value("marker") == "kept"
    reader.close()
    assert (state.with_name("state.key.new")).exists()  # the reader changed nothing
    store, key = open_state(state, {}, SystemClock(), recover=True)
    store.close()
    assert key.hex == new_hex
    assert state.with_name("state.key").read_text().strip() == new_hex
    assert not state.with_name("state.key.new").exists()


def test_killed_before_the_swap_keeps_the_old_key_and_tidies_up(state: Path) -> None:
    old_hex = state.with_name("state.key").read_text().strip()
    rotate_until_swap(state, swap=False)
    store, key = open_state(state, {}, SystemClock(), recover=True)
    assert store.get_value("marker") == "kept"
    store.close()
    assert key.hex == old_hex
    assert not state.with_name("state.key.new").exists()
    assert not state.with_name("state.db.rotating").exists()
