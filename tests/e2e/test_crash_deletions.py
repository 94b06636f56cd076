"""Random SIGKILLs while bills are edited, deleted and restored: nothing lost, nothing twice.

As `test_crash_random.py`, with deletions and restores among the changes (issue
#27). A version is identified by its object's `Version` cell, which only grows,
so a (bill, Version) pair seen in two files is a duplicate; a bill whose last
row in Stampli is not its final state (its current number, or a VOID when it is
deleted) is a loss.
"""

import csv
import io
import random
import signal
import time
from collections import Counter

import pytest

from tests.e2e.conftest import Connected
from tests.e2e.test_crash_random import kill_point
from tests.support.cli import start
from tests.support.summary import SUMMARY

pytestmark = pytest.mark.cli_process  # kill -9 of the CLI process is the subject

Row = dict[str, str]


def bill_rows_in_order(connected: Connected) -> list[Row]:
    """Every bill row Stampli received, in delivery order (names sort so), one per version."""
    rows: list[Row] = []
    for name in connected.inbound_files():
        if name.endswith("-bills.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            seen: set[tuple[str, str]] = set()
            for row in csv.DictReader(io.StringIO(text)):
                key = (row["FreshBooks Bill ID"], row["Version"])
                if key not in seen:  # a bill's lines share its version
                    seen.add(key)
                    rows.append(row)
    return rows


def change(connected: Connected, rng: random.Random, edits: dict[int, int]) -> None:
    """Three changes: an edit, a deletion or a restore, whichever the bill allows."""
    fb = connected.freshbooks
    for bill_id in rng.sample(sorted(edits), 3):
        deleted = fb.data.bills[bill_id]["vis_state"] == 1
        if deleted:
            fb.update_bill(bill_id, vis_state=0)
        elif rng.random() < 0.4:
            fb.delete_bill(bill_id)
        else:
            edits[bill_id] += 1
            fb.update_bill(bill_id, bill_number=f"B{bill_id}-V{edits[bill_id]}")


def run_trials(connected: Connected, trials: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    edits = dict.fromkeys(sorted(connected.freshbooks.data.bills), 0)
    assert connected.run("push-bills").code == 0
    started = time.monotonic()
    change(connected, rng, edits)
    assert connected.run("push-bills").code == 0
    typical = time.monotonic() - started
    points: Counter[str] = Counter()
    killed = 0
    for _ in range(trials):
        before = set(connected.inbound_files())
        process = start(connected.home, "push-bills")
        change(connected, rng, edits)
        time.sleep(rng.uniform(0.02, typical * 1.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
            points[kill_point(before, connected.inbound_files())] += 1
        process.communicate(timeout=60)
    for _ in range(2):
        final = connected.run("push-bills")
        assert final.code == 0, final.stderr
    rows = bill_rows_in_order(connected)
    versions = Counter((r["FreshBooks Bill ID"], r["Version"]) for r in rows)
    duplicated = [key for key, count in versions.items() if count > 1]
    last = {r["FreshBooks Bill ID"]: r for r in rows}
    lost = []
    for bill_id, bill in connected.freshbooks.data.bills.items():
        row = last[str(bill_id)]
        if bill["vis_state"] == 1:
            ok = row["Action"] == "VOID"
        else:
            ok = row["Action"] != "VOID" and row["Invoice Number"] == bill["bill_number"]
        if not ok:
            lost.append(bill_id)
    actions = Counter(r["Action"] for r in rows)
    summary = {"trials": trials, "killed": killed, "lost": len(lost), "duplicated": len(duplicated)}
    figures = ", ".join(f"{k} {v}" for k, v in summary.items())
    sent = ", ".join(f"{action} {count}" for action, count in sorted(actions.items()))
    struck = ", ".join(f"{point} {count}" for point, count in sorted(points.items()))
    SUMMARY.line(f"crash trials with deletions: {figures}; rows {sent}; kill points: {struck}")
    assert lost == []
    assert duplicated == []
    assert actions["VOID"] > 0
    assert actions["RESTORE"] > 0
    return summary


@pytest.mark.slow
def test_random_kills_among_deletions_and_restores_lose_and_duplicate_nothing(
    connected: Connected,
) -> None:
    summary = run_trials(connected, trials=20, seed=27)
    assert summary["killed"] > 0
