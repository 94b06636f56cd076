"""Key rotation killed at any moment: the state opens afterwards with the old or the new key."""

import random
import signal
import time
from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.store import open_state
from tests.support.cli import run, start


def fill(home: Path, megabytes: int) -> None:
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        with store.transaction():
            store.put_value("marker", "still here")
            blob = "x" * 1000
            store.execute_many(
                "INSERT INTO audit (at, action, detail) VALUES ('2026-01-01', 'filler', ?)",
                [(blob,)] * (megabytes * 1000),
            )
    finally:
        store.close()


def marker(home: Path) -> str | None:
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        return store.get_value("marker")
    finally:
        store.close()


@pytest.mark.slow
def test_rotation_killed_at_random_moments_never_loses_the_state(home: Path) -> None:
    fill(home, megabytes=20)
    before = (home / "state.key").read_text()
    started = time.monotonic()
    assert run(home, "key", "rotate").code == 0  # one whole rotation, to time the window
    whole = time.monotonic() - started
    assert (home / "state.key").read_text() != before
    assert marker(home) == "still here"
    rng = random.Random(5)
    outcomes = {"killed": 0, "finished": 0}
    for _ in range(12):
        before = (home / "state.key").read_text()
        process = start(home, "key", "rotate")
        time.sleep(rng.uniform(0.1, 0.9) * whole)  # somewhere inside a rotation
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            outcomes["killed"] += 1
        else:
            outcomes["finished"] += 1
        process.communicate(timeout=60)
        assert run(home, "init").code == 0  # opens, read-only, whichever key works
        recovered = run(home, "retry", "--failed", "--queue-only")  # a locked run finishes it
        assert recovered.code == 0, recovered.stderr
        assert marker(home) == "still here"
        assert not (home / "state.key.new").exists()
        assert not (home / "state.db.rotating").exists()
        after = (home / "state.key").read_text()
        if process.returncode == 0:
            assert after != before
    assert outcomes["killed"] > 0
