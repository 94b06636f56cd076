"""A full disk on this machine: one line, exit 4, nothing lost, and the next run finishes it.

The run is started with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored), so
every write past the limit fails inside the process as on a full disk, for
the state, its WAL and the local copies alike; nothing in the product knows.
"""

import json
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import Connected
from tests.support.cli import Result, cli_env, one_line

FULL = "the disk is full or failing"


def limited_to(limit: int) -> Callable[[], None]:
    def lower() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return lower


def run_on_a_full_disk(home: Path, limit: int, *args: str) -> Result:
    completed = subprocess.run(
        [sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited_to(limit),
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def bill_files(connected: Connected) -> list[str]:
    return [name for name in connected.inbound_files() if name.endswith("-bills.csv")]


def test_a_disk_that_fills_during_a_push_is_exit_4_and_the_next_run_delivers_once(
    connected: Connected,
) -> None:
    connected.freshbooks.seed(vendors=5, bills=300, payments=0, seed=3)
    state = connected.home / "state.db"
    result = run_on_a_full_disk(connected.home, state.stat().st_size + 16_384, "push-bills")
    assert result.code == 4, result.stderr
    assert one_line(result.stderr)
    assert FULL in result.stderr
    assert "free space" in result.stderr

    again = connected.run("push-bills")
    assert again.code == 0, again.stderr
    assert len(bill_files(connected)) == 1  # every bill once, in one file
    assert connected.run("push-bills").code == 0
    assert len(bill_files(connected)) == 1


def test_a_full_disk_when_the_state_is_opened_is_not_taken_for_a_wrong_key(
    connected: Connected,
) -> None:
    state = connected.home / "state.db"
    before = state.read_bytes()
    result = run_on_a_full_disk(connected.home, 1_000, "status")
    assert result.code == 4, result.stderr
    assert FULL in result.stderr
    assert "key" not in result.stderr
    assert state.read_bytes() == before


def test_a_log_file_that_cannot_be_written_is_one_warning_and_the_run_goes_on(
    connected: Connected,
) -> None:
    # Once a link to /dev/full; links in the home are refused now, so the log file is grown
    # (sparse) to the run's file-size limit instead: every append to it fails, nothing else.
    log_file = connected.home / "logs" / "fbstampli.log"
    limit = 4_000_000  # under the 5 MB rotation, above what the state needs
    with log_file.open("ab") as grown:
        grown.truncate(limit)
    result = run_on_a_full_disk(connected.home, limit, "push-bills")
    assert result.code == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"fbstampli: cannot write the log file {log_file} (File too large); "
        "not logging to it for the rest of this run"
    ]
    assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments
    quiet = connected.run("-q", "push-bills")
    assert quiet.code == 0
    assert quiet.stderr == ""  # cron's -q: errors only, and this is not one


def test_a_disk_that_fills_during_a_download_is_named_as_this_machines_and_resumed(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0
    export = connected.sftp.root / "outbound" / "stampli_payment_big.csv"
    wide = "Vendor " + "x" * 1900
    with export.open("w", encoding="utf-8", newline="") as out:
        out.write(
            "Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,Vendor Name\r\n"
        )
        rows = 0
        while out.tell() < 2 * 1024 * 1024:
            out.write(f"STP-{rows:07d},{rows},PAY-{rows},2026-11-24,1.00,{wide}\r\n")
            rows += 1
    result = run_on_a_full_disk(connected.home, 1024 * 1024, "pull-stampli", "--now")
    assert result.code == 75, result.stderr
    assert one_line(result.stderr)
    assert f"cannot write the local copy in {connected.home / 'stampli'}" in result.stderr
    assert "SFTP server" not in result.stderr
    again = connected.run("pull-stampli", "--now", "--json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["counts"] == {"files": 1, "records": rows}
