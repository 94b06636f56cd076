"""One tick of `sync --all` over many businesses: at most `jobs` at once, each in a process of
its own under a time budget, and the order of the next tick (a business cut goes first).

A process per business, forked from this one (nothing to import again, so 200 businesses
cost 200 forks, not 200 interpreter starts): a business that hangs in a read no timeout
ends soon enough cannot be interrupted from inside its own thread, but its process can.
At the budget it gets SIGTERM, which its handler turns into `BudgetExceeded`: the run
unwinds (the open transaction rolls back, the run is recorded as ended 75); a process
still alive `GRACE_SECONDS` later gets SIGKILL. Either is safe: every step of a run is
journalled before its side effect (the guarantee the crash tests prove with kill -9).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Generic, TypeVar

from fbstampli.atomic import write_atomic
from fbstampli.errors import BudgetExceeded
from fbstampli.installation import BusinessHome
from fbstampli.signals import mark_stopping

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_FILE = "sync-first.json"  # in the installation folder: who goes first next tick
POLL_SECONDS = 0.5  # how soon a SIGTERM to the tick itself is acted on
GRACE_SECONDS = 10.0  # from SIGTERM to SIGKILL: time to roll back and record the run
BUDGET_SETTING = "sync.business_budget_seconds"


def budget_words(budget: float) -> str:
    return f"its time budget of {budget:g} s ({BUDGET_SETTING})"


# -- the order of a tick --------------------------------------------------------------------------


def tick_order(folder: Path, businesses: list[BusinessHome]) -> list[BusinessHome]:
    """`businesses` in the order to start them: those cut at the last tick first (in the
    order they were cut), then the others in name order. An unreadable order file only
    costs the order, never the tick."""
    first = _read_first(folder / FIRST_FILE)
    by_name = {business.name: business for business in businesses}
    ahead = [by_name[name] for name in first if name in by_name]
    return ahead + [business for business in businesses if business.name not in first]


def _read_first(path: Path) -> list[str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        log.warning("cannot read %s (%s); businesses run in name order this time", path, error)
        return []
    names = document.get("first") if isinstance(document, dict) else None
    if not isinstance(names, list):
        return []
    return list(dict.fromkeys(name for name in names if isinstance(name, str)))


def remember_first(folder: Path, cut: list[str]) -> None:
    """Record the businesses cut this tick, to go first at the next; written only when it
    changes, so a quiet installation is not written to every 15 minutes."""
    path = folder / FIRST_FILE
    if _read_first(path) == cut and (cut or not path.exists()):
        return
    document = {
        "schema": 1,
        "why": "businesses stopped at their time budget by the last `sync --all`; "
        "the next one starts them first",
        "first": cut,
    }
    try:
        write_atomic(path, (json.dumps(document, indent=2) + "\n").encode(), mode=0o644)
    except OSError as error:
        log.warning("cannot write %s (%s); the next tick runs in name order", path, error)


# -- bounded parallel runs ------------------------------------------------------------------------


@dataclass(slots=True)
class Tick(Generic[T]):
    """What each business's process handed back, by name, and who was cut, in that order."""

    outcomes: dict[str, T] = field(default_factory=dict)
    cut: list[str] = field(default_factory=list)
    most_at_once: int = 0


@dataclass(slots=True)
class _Running:
    business: BusinessHome
    process: BaseProcess
    reader: Connection
    deadline: float
    stopping: bool = False


@dataclass(frozen=True, slots=True)
class Work(Generic[T]):
    """What a tick runs: `run` in a business's own process; `cut` the outcome of one
    stopped at its budget (built in the child when it could still say so, else here);
    `lost` the outcome of a process that ended without handing one back."""

    run: Callable[[BusinessHome], T]
    cut: Callable[[BusinessHome, str], T]
    lost: Callable[[BusinessHome, str], T]


def run_bounded(
    businesses: list[BusinessHome],
    work: Work[T],
    *,
    jobs: int,
    budget: float,
    grace: float = GRACE_SECONDS,
) -> Tick[T]:
    """Run `work.run` for each business in its own process, never more than `jobs` at once,
    starting them in the given order; each is stopped at `budget` seconds."""
    context = multiprocessing.get_context("fork")
    waiting = deque(businesses)
    running: dict[Connection, _Running] = {}
    tick: Tick[T] = Tick()
    # SIGTERM to this process (systemd stopping the unit, a kill) stops the businesses
    # running now as at their budget, rather than leaving them running on as orphans.
    told: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: told.append(1)) if main else None
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                business = waiting.popleft()
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_child,
                    args=(business, work, budget, writer),
                    name=f"fbstampli-{business.name}",
                )
                process.start()
                writer.close()  # the child's copy alone: its end is EOF here
                running[reader] = _Running(business, process, reader, time.monotonic() + budget)
                tick.most_at_once = max(tick.most_at_once, len(running))
            soonest = min(each.deadline for each in running.values())
            timeout = min(POLL_SECONDS, max(0.0, soonest - time.monotonic()))
            for ready in wait(list(running), timeout=timeout):
                each = next(r for r in running.values() if r.reader is ready)
                _collect(running.pop(each.reader), work, budget, grace, tick)
            _enforce(running, grace, tick)
            if told:  # not raised in the handler: it may strike where an exception is lost
                raise KeyboardInterrupt
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        for each in running.values():
            _stop(each, grace)
    return tick


def _enforce(running: dict[Connection, _Running], grace: float, tick: Tick[T]) -> None:
    """SIGTERM to each business past its budget (said once, in the log), SIGKILL to each
    still alive `grace` seconds after that."""
    now = time.monotonic()
    for each in running.values():
        if now < each.deadline:
            continue
        if not each.stopping:
            log.info("business %s: past its time budget; stopping it", each.business.name)
            each.stopping = True
            each.deadline = now + grace
            tick.cut.append(each.business.name)
            each.process.terminate()
        else:
            log.warning(
                "business %s: still running %g s after SIGTERM; killed",
                *(each.business.name, grace),
            )
            each.process.kill()
            each.deadline = now + grace  # its pipe's EOF arrives once it is gone


def _collect(each: _Running, work: Work[T], budget: float, grace: float, tick: Tick[T]) -> None:
    """The business's outcome from its pipe (EOF: it died first), its process reaped."""
    try:
        outcome: T | None = each.reader.recv()
    except (EOFError, OSError):
        outcome = None
    finally:
        each.reader.close()
    each.process.join(grace)
    if each.process.is_alive():
        each.process.kill()
        each.process.join()
    name = each.business.name
    if outcome is None:
        if each.stopping:
            outcome = work.cut(each.business, budget_words(budget))
        else:
            code = each.process.exitcode
            outcome = work.lost(each.business, f"its process ended by itself (exit {code})")
    tick.outcomes[name] = outcome


def _stop(each: _Running, grace: float) -> None:
    """On the way out of an interrupted tick: each running business stopped as at its budget."""
    if each.process.is_alive():
        each.process.terminate()
        each.process.join(grace)
        if each.process.is_alive():
            each.process.kill()
            each.process.join()
    each.reader.close()


# -- in the business's own process ----------------------------------------------------------------


def _child(business: BusinessHome, work: Work[T], budget: float, writer: Connection) -> None:
    """Run one business and hand its outcome back; SIGTERM means the budget is spent."""

    parent = os.getppid()

    def stop(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # said once: a second one changes nothing
        mark_stopping()
        raise BudgetExceeded(
            budget_words(budget) if os.getppid() == parent else "the end of its `sync --all`"
        )

    signal.signal(signal.SIGTERM, stop)
    _die_with(parent)
    try:
        outcome = work.run(business)
    except BudgetExceeded as stopped:
        outcome = work.cut(business, str(stopped))
    except KeyboardInterrupt:
        outcome = work.lost(business, "interrupted; the next run finishes its work")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # from here on it is only handing back
    try:
        writer.send(outcome)
    finally:
        writer.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """SIGTERM this process when the tick's process dies, even by SIGKILL (Linux): an
    orphan would run on without its budget's keeper and hold its business's lock."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the budget is kept while the tick lives
        return
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)
