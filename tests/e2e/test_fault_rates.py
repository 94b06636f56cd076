"""`fbstampli sync` as cron runs it, in bad weather: faults at a seeded rate, one area at a time.

Each test runs `fbstampli -q sync` round after round while bills change, with one
area failing at random: FreshBooks (429, 500/503, answers slower than the
timeout, truncated JSON, dropped connections), the SFTP server (a connection cut
mid-transfer, permission denied, a full disk, slow writes) or Stampli itself
(re-uploading, renaming and deleting its exports and taking our invoice files
away while the run works). Between rounds the cron interval passes (backoffs
fall due; see `invariants.let_time_pass`). Then the faults stop and runs go on
until nothing is left to do.

A fault *survived* when its run ended with exit 0, or with a clean error — exit 1
or 75, every stderr line `fbstampli: …`, one line for 75, no traceback — and the
runs after it finished the work: every bill's current version delivered once,
no version twice, every export processed once with each of its rows stored once.
One summary line per area goes to the end of the pytest output.
"""

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from fbstampli.sandbox.fb_http import RATE_ACTIONS as FRESHBOOKS_FAULTS
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import RATE_ACTIONS as SFTP_FAULTS
from fbstampli.sandbox.stampli import DISTURBANCES, StampliSimulator
from tests.e2e.conftest import Connected
from tests.e2e.invariants import active_bills, check_pull, check_push, let_time_pass
from tests.support.cli import Result
from tests.support.summary import SUMMARY

ROUNDS = 5
# Short FreshBooks timeouts and one retry per call, so that faults at a modest rate make
# whole runs fail now and then (the path under test), without a run taking long.
FAST_FRESHBOOKS = {
    "FBSTAMPLI_FRESHBOOKS_TIMEOUT_SECONDS": "1",
    "FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "1",
}
# Every outage said at once under -q, so each run that fails shows its one line: what these
# trials judge (a cron outage is otherwise only logged for its first two hours).
SAY_EVERY_OUTAGE = {"FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": "0"}


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksSandbox]:
    """A smaller account than the default: each round is a whole cron run, several per test."""
    with FreshBooksSandbox() as sandbox:
        sandbox.seed(vendors=4, bills=12, payments=4, seed=19)
        yield sandbox


def is_clean(result: Result) -> bool:
    """Exit 0, or a failure reported the documented way: codes 1/75, `fbstampli:` lines only."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if result.code == 0:
        return not lines
    if result.code not in (1, 75) or "Traceback" in result.stderr:
        return False
    if result.code == 75 and len(lines) != 1:
        return False
    return bool(lines) and all(
        line.startswith("fbstampli: ") and "internal error" not in line for line in lines
    )


@dataclass
class Weather:
    """What one area's rounds saw: faults handed out, runs and how they ended."""

    area: str
    injected: Counter[str] = field(default_factory=Counter)
    survived: int = 0
    exits: Counter[int] = field(default_factory=Counter)
    unclean: list[str] = field(default_factory=list)

    def round(self, result: Result, faults: Counter[str]) -> None:
        self.injected.update(faults)
        self.exits[result.code] += 1
        if is_clean(result):
            self.survived += sum(faults.values())
        else:
            self.unclean.append(f"exit {result.code}: {result.stderr.strip()[-600:]}")

    def report(self, problems: list[str]) -> None:
        total = sum(self.injected.values())
        survived = self.survived if not problems else 0
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(self.injected.items()))
        exits = ", ".join(f"exit {code} x{count}" for code, count in sorted(self.exits.items()))
        line = f"faults {self.area}: injected {total}, survived {survived} ({kinds}; runs: {exits})"
        if problems:
            line += "; " + "; ".join(problems)
        SUMMARY.line(line)


def change_bills(connected: Connected, rng: random.Random, version: Counter[int]) -> None:
    """A few bills and a vendor edited, sometimes a bill added, as between two cron runs.

    Two kinds of file per run (vendors, bills) means two uploads for the weather to hit.
    """
    fb = connected.freshbooks
    bills = sorted(active_bills(fb))
    for bill_id in rng.sample(bills, 3):
        version[bill_id] += 1
        fb.update_bill(bill_id, bill_number=f"B{bill_id}-V{version[bill_id]}")
    vendors = sorted(v for v, row in fb.data.vendors.items() if row.get("vis_state", 0) == 0)
    fb.update_vendor(rng.choice(vendors), phone=f"555-{rng.randrange(10000):04d}")
    if rng.random() < 0.3:
        vendor = vendors[0]
        new_id = fb.create_bill(vendor, bill_number="NEW")
        fb.update_bill(new_id, bill_number=f"B{new_id}-V0")


def run_until_quiet(connected: Connected, env: dict[str, str]) -> list[str]:
    """Fault-free runs until one changes nothing; the problems of any that did not end with 0."""
    problems: list[str] = []
    for _ in range(3):
        let_time_pass(connected.home)
        before = sorted(p.name for p in connected.sftp.root.rglob("*"))
        result = connected.run("-q", "sync", env={**SAY_EVERY_OUTAGE, **(env or {})})
        if result.code != 0:
            problems.append(f"fault-free run exit {result.code}: {result.stderr.strip()[-300:]}")
        if sorted(p.name for p in connected.sftp.root.rglob("*")) == before and result.code == 0:
            return problems
    problems.append("still changing after three fault-free runs")
    return problems


def weather_rounds(
    connected: Connected,
    weather: Weather,
    injected: Callable[[], Counter[str]],
    *,
    seed: int,
    env: dict[str, str] | None = None,
    during: Callable[[random.Random], Counter[str]] | None = None,
    before_round: Callable[[random.Random], None] | None = None,
) -> None:
    """ROUNDS cron runs under the area's faults; `during` meddles while a run is going."""
    rng = random.Random(seed)
    version: Counter[int] = Counter()
    for _ in range(ROUNDS):
        change_bills(connected, rng, version)
        if before_round is not None:
            before_round(rng)
        start = Counter(injected())
        meddled: Counter[str] = Counter()
        worker = None
        if during is not None:
            worker = threading.Thread(
                target=lambda tally, meddler: tally.update(during(meddler)),
                args=(meddled, random.Random(rng.random())),
            )
            worker.start()
        result = connected.run("-q", "sync", env={**SAY_EVERY_OUTAGE, **(env or {})})
        if worker is not None:
            worker.join()
        faults = Counter(injected())
        faults.subtract(start)
        faults.update(meddled)
        weather.round(result, +faults)
        let_time_pass(connected.home)


def assert_weathered(weather: Weather, problems: list[str], kinds: tuple[str, ...]) -> None:
    weather.report(problems)
    assert weather.unclean == []
    assert problems == []
    assert set(weather.injected) == set(kinds), "some kind of fault never struck"


def push_problems(connected: Connected) -> list[str]:
    outcome = check_push(connected.freshbooks, connected.sftp.root)
    problems = []
    if outcome.lost:
        problems.append(f"LOST {outcome.lost}")
    if outcome.duplicated:
        problems.append(f"DUPLICATED {outcome.duplicated}")
    return problems


@pytest.mark.slow
def test_freshbooks_faults_at_a_rate_lose_and_duplicate_nothing(connected: Connected) -> None:
    fb = connected.freshbooks
    fault_rate = fb.fail_at_rate("/accounting/", 0.4, seed=3, delay_seconds=1.5)
    weather = Weather("freshbooks")
    weather_rounds(connected, weather, lambda: fault_rate.injected, seed=5, env=FAST_FRESHBOOKS)
    fb.clear_faults()
    problems = run_until_quiet(connected, {})
    assert_weathered(weather, problems + push_problems(connected), FRESHBOOKS_FAULTS)


@pytest.mark.slow
def test_sftp_faults_at_a_rate_lose_and_duplicate_nothing(connected: Connected) -> None:
    """Downloads are in the weather too: Stampli exports a file every round."""
    stampli = StampliSimulator(connected.sftp.root)
    fault_rate = connected.sftp.fail_at_rate(0.25, seed=8)
    weather = Weather("sftp")

    def export(rng: random.Random) -> None:
        bills = list(stampli.inbound_bills().values())
        if bills:
            stampli.export_captures(rng.sample(bills, min(3, len(bills))))

    weather_rounds(connected, weather, lambda: fault_rate.injected, seed=9, before_round=export)
    connected.sftp.faults.rate = None
    problems = run_until_quiet(connected, {})
    pulled = check_pull(connected.home, connected.sftp.root, stampli.exports)
    if pulled.lost or pulled.duplicated or pulled.record_difference:
        problems.append(f"pull: {pulled}")
    assert_weathered(weather, problems + push_problems(connected), SFTP_FAULTS)
    assert pulled.processed > 0


@pytest.mark.slow
def test_stampli_meddling_under_us_loses_and_duplicates_nothing(connected: Connected) -> None:
    """Stampli re-uploads, renames and deletes its exports and takes our files mid-run."""
    stampli = StampliSimulator(connected.sftp.root)
    weather = Weather("stampli")

    def export(rng: random.Random) -> None:
        bills = sorted(stampli.inbound_bills().values(), key=lambda bill: bill.fb_id)
        if bills:
            stampli.export_captures(rng.sample(bills, min(4, len(bills))))
            paid = rng.choice(bills)
            stampli.export_payments([(paid, paid.total, paid.currency)])

    kinds = itertools.cycle(DISTURBANCES)  # in turn, so that every kind strikes

    def meddle(rng: random.Random) -> Counter[str]:
        done: Counter[str] = Counter()
        for _ in range(4):
            time.sleep(rng.uniform(0.0, 0.6))  # spread over the run, not all at its start
            kind = stampli.disturb(rng, next(kinds))
            if kind is not None:
                done[kind] += 1
        return done

    weather_rounds(connected, weather, Counter, seed=13, before_round=export, during=meddle)
    problems = run_until_quiet(connected, {})
    pulled = check_pull(connected.home, connected.sftp.root, stampli.exports)
    if pulled.lost or pulled.duplicated or pulled.record_difference:
        problems.append(f"pull: {pulled}")
    assert_weathered(weather, problems + push_problems(connected), DISTURBANCES)
    assert pulled.processed > 0
