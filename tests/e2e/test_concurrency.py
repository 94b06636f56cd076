"""Cron's `sync`, a manual `retry --bill` and the webhook worker, all at once, on one home.

Three real processes race for the run lock and the state while the office keeps
editing bills in FreshBooks, and FreshBooks (the sandbox) announces every edit to
`serve-webhook` as a signed event. Before the race a few deliveries are made to
fail, so that `retry --bill` has real work to do in it. Every process must end
each run with 0, or 75 when another holds the lock; none may say "database is
locked" or print a traceback; every signed event must be accepted; and after the
race (and the refused bills' backoff) runs to quiescence must leave every bill's
current version in Stampli's inbound folder exactly once and no version twice.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from tests.e2e.conftest import Connected
from tests.e2e.invariants import active_bills, check_push, let_time_pass
from tests.e2e.test_webhook import Serving, start_listener
from tests.support.cli import Result, run
from tests.support.local_http import wait_for
from tests.support.summary import SUMMARY

pytestmark = pytest.mark.cli_process  # locks held across processes are the subject

RACE_SECONDS = 8.0
FORBIDDEN = ("database is locked", "Traceback", "internal error")


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksSandbox]:
    """The sandbox, announcing each change to verified callbacks as a signed webhook."""
    with FreshBooksSandbox(emit_events=True) as sandbox:
        sandbox.seed(vendors=3, bills=10, payments=2, seed=23)
        yield sandbox


class Loop:
    """One command run over and over in its own thread, as cron or an operator would.

    `next_args` chooses each run's arguments from the previous run (None at first).
    """

    def __init__(
        self, home: Path, next_args: Callable[[tuple[list[str], Result] | None], list[str]]
    ) -> None:
        self.home = home
        self.next_args = next_args
        self.results: list[tuple[list[str], Result]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            args = self.next_args(self.results[-1] if self.results else None)
            self.results.append((args, run(self.home, "-q", *args)))

    @property
    def codes(self) -> Counter[int]:
        return Counter(result.code for _, result in self.results)


class RetryPlan:
    """The operator's retries: each refused bill until a run of it got the lock, then any bill."""

    def __init__(self, refused: list[int], bills: list[int], rng: random.Random) -> None:
        self.waiting = list(refused)
        self.bills = bills
        self.rng = rng

    def __call__(self, previous: tuple[list[str], Result] | None) -> list[str]:
        if previous is not None and previous[1].code == 0:
            done = int(previous[0][-1])
            if done in self.waiting:
                self.waiting.remove(done)
        bill_id = self.waiting[0] if self.waiting else self.rng.choice(self.bills)
        return ["retry", "--bill", str(bill_id)]


def serving_home(connected: Connected, tmp_path: Path) -> Serving:
    with (connected.home / "config.toml").open("a") as config:
        config.write("[webhook]\ndebounce_seconds = 0.2\n")
    serving = start_listener(connected, tmp_path)
    registered = connected.run("webhooks", "register", "--url", serving.url)
    assert registered.code == 0, registered.output
    return serving


def fail_some_deliveries(connected: Connected, bills: list[int]) -> None:
    """New versions of `bills` whose upload is refused: failed deliveries, backing off."""
    for bill_id in bills:
        connected.freshbooks.update_bill(bill_id, bill_number=f"B{bill_id}-V1")
    connected.sftp.faults.deny_writes = True
    refused = connected.run("-q", "push-bills", env={"FBSTAMPLI_SFTP_UPLOAD_ATTEMPTS": "1"})
    connected.sftp.faults.deny_writes = False
    assert refused.code == 1, refused.stderr


@pytest.mark.slow
def test_cron_retry_and_webhook_worker_at_once_lose_duplicate_and_lock_nothing(
    connected: Connected, tmp_path: Path
) -> None:
    fb = connected.freshbooks
    assert connected.run("-q", "push-bills").code == 0
    bills = sorted(active_bills(fb))
    rng = random.Random(29)
    failed = rng.sample(bills, 3)
    fail_some_deliveries(connected, failed)  # before the listener: no events for these
    serving = serving_home(connected, tmp_path)
    version: Counter[int] = Counter(dict.fromkeys(failed, 1))
    plan = RetryPlan(failed, bills, random.Random(31))
    cron = Loop(connected.home, lambda previous: ["sync"])
    retry = Loop(connected.home, plan)
    for loop in (cron, retry):
        loop.thread.start()
    start = time.monotonic()
    edits = 0

    def racing() -> bool:
        """RACE_SECONDS, and on a slow machine on until each loop got the lock at least once."""
        elapsed = time.monotonic() - start
        everyone_ran = cron.codes[0] > 0 and len(plan.waiting) < len(failed)
        return elapsed < RACE_SECONDS or (not everyone_ran and elapsed < 4 * RACE_SECONDS)

    while racing():
        bill_id = rng.choice(bills)
        version[bill_id] += 1
        fb.update_bill(bill_id, bill_number=f"B{bill_id}-V{version[bill_id]}")  # a signed event
        edits += 1
        time.sleep(rng.uniform(0.1, 0.4))
    for loop in (cron, retry):
        loop.stop.set()
    for loop in (cron, retry):
        loop.thread.join(timeout=120)
    wait_for(lambda: serving.health()["queued_events"] == 0)
    worker = serving.worker()
    assert serving.stop() == 0

    # Quiescence: once the refused bills' backoff is over (let_time_pass), one run finishes
    # what the race left and the next finds nothing to do.
    let_time_pass(connected.home)
    settle = [connected.run("-q", "sync")]
    files = sorted(path.name for path in connected.sftp.root.rglob("*"))
    settle.append(connected.run("-q", "sync"))
    said = [result.stderr for _, result in cron.results + retry.results]
    said += [result.stderr for result in settle] + [serving.log.read_text()]
    said += [path.read_text() for path in sorted((connected.home / "logs").glob("*"))]
    outcome = check_push(fb, connected.sftp.root)
    busy = cron.codes[75] + retry.codes[75] + int(worker["busy_retries"])
    SUMMARY.line(
        f"concurrency: sync runs {cron.codes.total()} (lock busy {cron.codes[75]}), "
        f"retry runs {retry.codes.total()} (lock busy {retry.codes[75]}), "
        f"webhook events {edits}, worker pushes {worker['runs']} "
        f"(lock busy {worker['busy_retries']}), lost {len(outcome.lost)}, "
        f"duplicated {len(outcome.duplicated)}"
    )

    assert set(cron.codes) <= {0, 75}, cron.results
    assert set(retry.codes) <= {0, 75}, retry.results
    assert [result.code for result in settle] == [0, 0], settle
    assert sorted(path.name for path in connected.sftp.root.rglob("*")) == files
    assert [word for word in FORBIDDEN for text in said if word in text] == []
    assert {d.status for d in fb.deliveries if d.form[0][0] == "name"} == {200}
    assert outcome.lost == []
    assert outcome.duplicated == []
    # The three really did run at once: each did work, and someone found the lock taken.
    assert cron.codes[0] > 0
    assert len(plan.waiting) < len(failed), "retry never got the lock for a refused bill"
    assert int(worker["runs"]) > 0
    assert edits > 10
    assert busy > 0
