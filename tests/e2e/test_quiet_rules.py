"""One cron-mail rule for every transient condition (issue #24, item 7's leftovers): a held
run lock reads `monitoring.quiet_transient_hours` as an unreachable remote does (and `sync
--all -q` applies the same rule to each business's line: tests/e2e/test_firm.py).

The lock is held by a real second process; its age is the lock file's time, as the
product reads it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.test_foundation import hold_lock_in_another_process
from tests.support.cli import one_line, run

AT_ONCE = {"FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": "0"}


@contextmanager
def lock_held(home: Path, *, minutes: float = 0) -> Iterator[subprocess.Popen[str]]:
    holder = hold_lock_in_another_process(home)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        then = time.time() - minutes * 60
        os.utime(home / "run.lock", (then, then))
        yield holder
    finally:
        holder.kill()
        holder.communicate()


def hours(value: str) -> dict[str, str]:
    return {"FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": value}


def test_a_held_lock_is_silent_under_q_for_as_long_as_quiet_transient_hours_says(
    home: Path,
) -> None:
    with lock_held(home) as holder:
        at_once = run(home, "-q", "sync", env=AT_ONCE)
        assert at_once.code == 75
        assert one_line(at_once.stderr)
        assert f"another fbstampli run (pid {holder.pid}) is using {home}" in at_once.stderr
    with lock_held(home, minutes=30):
        young = run(home, "-q", "sync", env=hours("1"))
        assert (young.code, young.stderr) == (75, "")
        lasted = run(home, "-q", "sync", env=hours("0.25"))
        assert lasted.code == 75
        assert one_line(lasted.stderr)
        assert "(for 30 min)" in lasted.stderr
