"""Crash safety from outside: SIGKILL push-bills where a server holds it, then run again.

Every vendor, bill and payment must reach Stampli's inbound folder exactly once,
whatever the moment of the kill. The servers hold a request; the test kills the
process there: nothing in the product knows it is being tested.
"""

import csv
import io
import signal
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import start

pytestmark = pytest.mark.cli_process  # kill -9 of the CLI process is the subject

HOLD_SECONDS = 30


def delivered(connected: Connected) -> Counter[tuple[str, str]]:
    """(kind, id) -> how many files carried it; a bill counts once per file, not per line."""
    seen: Counter[tuple[str, str]] = Counter()
    columns = {
        "-vendors.csv": ("vendor", "FreshBooks Vendor ID"),
        "-bills.csv": ("bill", "FreshBooks Bill ID"),
        "-payments.csv": ("payment", "FreshBooks Payment ID"),
    }
    for name in connected.inbound_files():
        for suffix, (kind, column) in columns.items():
            if name.endswith(suffix):
                text = (connected.inbound / name).read_text(encoding="utf-8")
                for fb_id in {row[column] for row in csv.DictReader(io.StringIO(text))}:
                    seen[(kind, fb_id)] += 1
    return seen


def expected(connected: Connected) -> set[tuple[str, str]]:
    data = connected.freshbooks.data

    def live(records: dict) -> set[str]:
        return {str(i) for i, record in records.items() if record.get("vis_state", 0) != 1}

    return (
        {("vendor", i) for i in live(data.vendors)}
        | {("bill", i) for i in live(data.bills)}
        | {("payment", i) for i in live(data.payments)}
    )


def kill_while_held(
    connected: Connected,
    hold: AbstractContextManager,
    reached: Callable,
    env: dict[str, str] | None = None,
) -> None:
    with hold as held:
        process = start(connected.home, "push-bills", env=env)
        try:
            assert reached(held).wait(HOLD_SECONDS), "the push never reached the hold point"
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=HOLD_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == -signal.SIGKILL


def sftp_hold(pattern: str) -> Callable[[Connected], tuple[AbstractContextManager, Callable]]:
    return lambda c: (c.sftp.hold(pattern), lambda held: held.reached)


def freshbooks_hold(kind: str) -> Callable[[Connected], tuple[AbstractContextManager, Callable]]:
    def make(c: Connected) -> tuple[AbstractContextManager, Callable]:
        prefix = f"/accounting/account/{c.freshbooks.account_id}/{kind}"
        hold = c.freshbooks.hold(prefix, method="GET")

        class Holding(AbstractContextManager):
            def __enter__(self):
                return hold

            def __exit__(self, *exc):
                hold.release()

        return Holding(), lambda held: held.arrived

    return make


KILL_POINTS = {
    "while listing vendors": freshbooks_hold("bill_vendors"),
    "while listing bills": freshbooks_hold("bills"),
    "while listing payments": freshbooks_hold("bill_payments"),
    "mid-upload of the vendors file": sftp_hold("*-vendors.csv.part"),
    "mid-upload of the bills file": sftp_hold("*-bills.csv.part"),
    "after the vendors rename, before its commit": sftp_hold("renamed:*-vendors.csv"),
    "after the bills rename, before its commit": sftp_hold("renamed:*-bills.csv"),
    "after the payments rename, before its commit": sftp_hold("renamed:*-payments.csv"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_push_is_finished_by_the_next_run_exactly_once(
    connected: Connected, point: str
) -> None:
    hold, reached = KILL_POINTS[point](connected)
    kill_while_held(connected, hold, reached)
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    seen = delivered(connected)
    assert set(seen) == expected(connected)
    assert [key for key, count in seen.items() if count != 1] == []
    assert not [name for name in connected.inbound_files() if name.endswith(".part")]


def test_killed_twice_in_a_row_still_delivers_once(connected: Connected) -> None:
    for pattern in ("*-vendors.csv.part", "renamed:*-bills.csv"):
        kill_while_held(connected, connected.sftp.hold(pattern), lambda held: held.reached)
    assert connected.run("push-bills").code == 0
    seen = delivered(connected)
    assert set(seen) == expected(connected)
    assert max(seen.values()) == 1


def test_changes_made_while_a_push_was_killed_arrive_next_run(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    bill_id = next(iter(sorted(connected.freshbooks.data.bills)))
    connected.freshbooks.update_bill(bill_id, bill_number="AFTER-CRASH")
    kill_while_held(connected, connected.sftp.hold("*-bills.csv.part"), lambda held: held.reached)
    assert connected.run("push-bills").code == 0
    carrying = [
        name
        for name in connected.inbound_files()
        if name.endswith("-bills.csv") and "AFTER-CRASH" in (connected.inbound / name).read_text()
    ]
    assert len(carrying) == 1
