"""doctor's state-integrity check failing for its own reason, through the CLI.

The state is damaged the way disks damage it: bytes flipped inside one page of
the real SQLCipher file.
"""

import re
from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.options import Options
from fbstampli.sandbox.demo import connect_home
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.store import open_state
from tests.e2e.conftest import Connected
from tests.support.cli import one_line

PAGE_SIZE = 4096  # SQLCipher 4's default, which `init` keeps
FIX_RESTORE = "restore the last good backup with `fbstampli state restore FILE`"


@pytest.fixture
def connected(tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer) -> Connected:
    """conftest's connected home, but connected in-process, as the demo does it.

    Set-up is not under test here; three fewer CLI start-ups per test keep the suite fast.
    """
    home = tmp_path / "home"
    connect_home(Options(home=home, env={}), freshbooks, sftp_server)
    return Connected(home, freshbooks, sftp_server)


def doctor_lines(connected: Connected, env: dict[str, str] | None = None) -> dict[str, str]:
    """doctor's text output as {check name: its whole line}, made comparable between runs."""
    result = connected.run("doctor", env=env)
    lines: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name = line[5:].split(":", 1)[0]
        # The probe file's random name and the clock's reading differ on every run.
        line = re.sub(r"fbstampli-probe-[0-9a-f]+", "fbstampli-probe-…", line)
        lines[name] = line
    assert result.code == (0 if all(v.startswith("ok") for v in lines.values()) else 1)
    return lines


def damage_page_of(home: Path, table: str) -> int:
    """Flip bytes inside the root page of `table`; return the page number.

    The WAL is folded into the main file first, so the damaged page is the one
    every reader gets. Page 1 (the schema) is never chosen, so the file still opens.
    """
    store, _ = open_state(home / "state.db", {}, SystemClock(), recover=False)
    try:
        row = store.query_one("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        assert row is not None
        page = int(row["rootpage"])
        store.checkpoint()
    finally:
        store.close()
    assert page > 1
    offset = (page - 1) * PAGE_SIZE + 512  # inside the encrypted payload, not the IV or HMAC
    with (home / "state.db").open("r+b") as file:
        file.seek(offset)
        original = file.read(16)
        file.seek(offset)
        file.write(bytes(byte ^ 0xFF for byte in original))
    return page


def test_a_damaged_page_fails_doctor_with_the_restore_fix_and_makes_a_run_exit_4(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0  # the audit trail now spans real pages
    healthy = doctor_lines(connected)
    assert healthy["state integrity"] == "ok   state integrity: cipher and page checks ok"

    page = damage_page_of(connected.home, "audit")
    damaged = doctor_lines(connected)

    line = damaged.pop("state integrity")
    assert line.startswith("FAIL state integrity: ")
    assert f"cipher_integrity_check: HMAC verification failed for page {page}" in line
    assert line.endswith(f" -> {FIX_RESTORE}")
    healthy.pop("state integrity")
    clock_then, clock_now = healthy.pop("clock"), damaged.pop("clock")
    assert damaged == healthy
    assert clock_then.startswith("ok   clock:")
    assert clock_now.startswith("ok   clock:")

    # A run that needs the damaged page stops with exit 4 and doctor's name, not a crash.
    bill_id = sorted(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number=f"B-{bill_id}-REVISED")
    result = connected.run("push-bills")
    assert result.code == 4, result.stderr
    assert one_line(result.stderr)
    assert "is damaged" in result.stderr
    assert "fbstampli doctor" in result.stderr
