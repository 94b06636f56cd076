"""Random SIGKILLs while bills keep changing: nothing lost, nothing sent twice.

Each trial starts `push-bills`, changes a few bills in FreshBooks meanwhile,
and kills the push after a random delay (sometimes it finishes first). After
the trials one clean run brings everything to rest. Versions only move
forward (`V<n>` in the bill number), so a (bill, version) pair seen in two
files is a duplicate, and a bill whose last version is missing is a loss.
The summary line goes to the end of the pytest output (tests/support/summary.py).
"""

import csv
import io
import random
import signal
import time
from collections import Counter

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import start
from tests.support.summary import SUMMARY


def versions_delivered(connected: Connected) -> Counter[tuple[str, str]]:
    seen: Counter[tuple[str, str]] = Counter()
    for name in connected.inbound_files():
        if name.endswith("-bills.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            pairs = {
                (r["FreshBooks Bill ID"], r["Invoice Number"])
                for r in csv.DictReader(io.StringIO(text))
            }
            seen.update(pairs)
    return seen


def run_trials(connected: Connected, trials: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    bills = sorted(connected.freshbooks.data.bills)
    version: dict[int, int] = dict.fromkeys(bills, 0)
    killed = finished = 0
    for _ in range(trials):
        process = start(connected.home, "push-bills")
        for bill_id in rng.sample(bills, 3):
            version[bill_id] += 1
            connected.freshbooks.update_bill(bill_id, bill_number=f"B{bill_id}-V{version[bill_id]}")
        time.sleep(rng.uniform(0.05, 2.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        else:
            finished += 1
        process.communicate(timeout=60)
    final = connected.run("push-bills")
    assert final.code == 0, final.stderr
    assert connected.run("push-bills").code == 0
    seen = versions_delivered(connected)
    latest = {str(b): connected.freshbooks.data.bills[b]["bill_number"] for b in bills}
    lost = [bill for bill, number in latest.items() if (bill, number) not in seen]
    duplicated = [pair for pair, count in seen.items() if count > 1]
    summary = {
        "trials": trials,
        "killed": killed,
        "finished_before_kill": finished,
        "lost": len(lost),
        "duplicated": len(duplicated),
        "versions_delivered": len(seen),
    }
    SUMMARY.line("crash trials: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    assert lost == []
    assert duplicated == []
    return summary


def test_random_kills_lose_and_duplicate_nothing(connected: Connected) -> None:
    summary = run_trials(connected, trials=20, seed=11)
    assert summary["killed"] > 0


@pytest.mark.slow
def test_two_hundred_random_kills_lose_and_duplicate_nothing(connected: Connected) -> None:
    summary = run_trials(connected, trials=200, seed=1234)
    assert summary["killed"] > 50
