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

pytestmark = pytest.mark.cli_process  # kill -9 of the CLI process is the subject


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


def change_bills(
    connected: Connected, rng: random.Random, version: dict[int, int], count: int = 3
) -> None:
    for bill_id in rng.sample(sorted(version), count):
        version[bill_id] += 1
        connected.freshbooks.update_bill(bill_id, bill_number=f"B{bill_id}-V{version[bill_id]}")


def typical_push_seconds(
    connected: Connected, rng: random.Random, version: dict[int, int]
) -> float:
    """How long an unkilled push takes here, now: the kill delays are drawn against it.

    A fixed delay range would kill most runs on a slow machine and few on a
    fast one (or after the push got faster); measured, it strikes throughout.
    """
    durations = []
    for _ in range(3):
        change_bills(connected, rng, version)
        started = time.monotonic()
        assert connected.run("push-bills").code == 0
        durations.append(time.monotonic() - started)
    return sorted(durations)[1]


def kill_point(before: set[str], after: list[str]) -> str:
    """Where the kill struck, read from the server: the run's journal is the product's business.

    Only names new in this trial count: a `.part` left by an earlier kill is not this one's.
    """
    new = set(after) - before
    if any(name.endswith(".part") for name in new):
        return "mid-upload"
    if new:
        return "after a file landed"
    return "before any upload"


def run_trials(connected: Connected, trials: int, seed: int) -> tuple[dict[str, int], Counter[str]]:
    rng = random.Random(seed)
    bills = sorted(connected.freshbooks.data.bills)
    version: dict[int, int] = dict.fromkeys(bills, 0)
    typical = typical_push_seconds(connected, rng, version)
    points: Counter[str] = Counter()
    killed = finished = 0
    for _ in range(trials):
        before = set(connected.inbound_files())
        process = start(connected.home, "push-bills")
        change_bills(connected, rng, version)
        time.sleep(rng.uniform(0.02, typical * 1.25))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=60)
            killed += 1
            points[kill_point(before, connected.inbound_files())] += 1
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
    struck = ", ".join(f"{point} {count}" for point, count in sorted(points.items()))
    figures = ", ".join(f"{k} {v}" for k, v in summary.items())
    SUMMARY.line(f"crash trials: {figures}; kill points: {struck}")
    assert lost == []
    assert duplicated == []
    return summary, points


@pytest.mark.slow
def test_random_kills_lose_and_duplicate_nothing(connected: Connected) -> None:
    summary, _ = run_trials(connected, trials=20, seed=11)
    assert summary["killed"] > 0


@pytest.mark.slow
@pytest.mark.long
def test_two_hundred_random_kills_lose_and_duplicate_nothing(connected: Connected) -> None:
    summary, points = run_trials(connected, trials=200, seed=1234)
    assert summary["killed"] > 50
    # Kills land on both sides of an upload, not only while the process starts.
    assert points["before any upload"] > 0
    assert points["mid-upload"] + points["after a file landed"] > 0
