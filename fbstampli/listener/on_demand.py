"""Businesses opened when their callbacks arrive and closed when idle (`serve-webhook --all`).

An installation of 200 businesses must not hold 200 open encrypted states
and 200 worker threads for callbacks that come to a few of them a day. Each
business is known at start by its name only; the injected `Open` opens its
state and makes its `Listener` and `Worker` when a request first comes for
it. One with no request for `idle_seconds`, no push running or due and no
request in progress is closed again; past `max_open`, the least recently
used idle one is closed to make room. A busy one (a push running or due) is
never closed, so the bound gives way rather than answer a genuine event 503:
memory is `max_open` businesses plus those pushing. One that cannot be
opened answers 503 (FreshBooks retries), and is tried again at most every
`retry_seconds`; the others are not affected. Counts survive a close.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fbstampli.errors import FbstampliError
from fbstampli.listener.business import Listener
from fbstampli.listener.http import Answer, ListenerStats
from fbstampli.listener.worker import Worker, WorkerState

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Opened:
    """One business ready for its callbacks: what `Open` returns, and how to close it."""

    listener: Listener
    worker: Worker
    close: Callable[[], None]  # closes its state (the worker is stopped first)
    leftovers: bool = False  # events were queued before it was opened: push them


Open = Callable[[], Opened]  # raises FbstampliError when the business cannot be opened


@dataclass(frozen=True, slots=True)
class Bounds:
    max_open: int = 32  # businesses open at once, busy ones apart
    idle_seconds: float = 600.0  # closed after this long without a callback
    retry_seconds: float = 60.0  # one that could not be opened is tried again after this long


@dataclass(slots=True)
class _Slot:
    name: str
    open: Open
    stats: ListenerStats = field(default_factory=ListenerStats)
    worker_state: WorkerState = field(default_factory=WorkerState)
    opened: Opened | None = None
    users: int = 0  # requests (and health looks) using it now
    last_used: float = 0.0
    failure: str | None = None
    failed_at: float = 0.0
    opening: threading.Lock = field(default_factory=threading.Lock)


class CannotOpen(Exception):
    """The business's state could not be opened (the reason is its message)."""


class OnDemand:
    """The businesses of one listener, each opened on its first request and closed when idle."""

    def __init__(
        self,
        openers: dict[str, Open],
        bounds: Bounds,
        *,
        stop_grace: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bounds = bounds
        self._slots = {name: _Slot(name, opener) for name, opener in openers.items()}
        self._stop_grace = stop_grace
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.opens = 0  # businesses opened so far, reopenings included

    def receivers(self) -> dict[str, OnDemandBusiness]:
        """What an `InstallationListener` routes each business's path to."""
        return {name: OnDemandBusiness(self, slot) for name, slot in self._slots.items()}

    def failures(self) -> dict[str, str]:
        """Why each business that could not be opened at its last try was not."""
        with self._lock:
            return {name: s.failure for name, s in self._slots.items() if s.failure is not None}

    def stats(self) -> dict[str, tuple[ListenerStats, WorkerState]]:
        return {name: (slot.stats, slot.worker_state) for name, slot in self._slots.items()}

    @contextmanager
    def using(self, name: str) -> Iterator[Listener]:
        """The business's listener, opened if need be; `CannotOpen` when it cannot be."""
        slot = self._slots[name]
        listener = self._acquire(slot)
        try:
            yield listener
        finally:
            with self._lock:
                slot.users -= 1
                slot.last_used = self._monotonic()

    def _acquire(self, slot: _Slot) -> Listener:
        with slot.opening:  # two first requests at once open it once
            with self._lock:
                if slot.opened is not None:
                    slot.users += 1
                    return slot.opened.listener
                if slot.failure and self._monotonic() - slot.failed_at < self.bounds.retry_seconds:
                    raise CannotOpen(slot.failure)
            try:
                opened = slot.open()
            except FbstampliError as error:
                raise self._failed(slot, str(error)) from None
            except Exception:  # a bug opening one business must not fail the others
                log.exception("business %s: opening its state failed", slot.name)
                raise self._failed(slot, "internal error opening its state (see the log)") from None
            opened.listener.stats = slot.stats  # its counts outlive each opening
            opened.worker.state = slot.worker_state
            opened.worker.start()
            with self._lock:
                slot.opened, slot.failure, slot.users = opened, None, slot.users + 1
                self.opens += 1
                surplus = self._surplus()
        log.info("business %s opened", slot.name)
        if opened.leftovers:
            opened.worker.wake()  # left queued by a listener that stopped
        self._close(surplus)
        return opened.listener

    def _failed(self, slot: _Slot, reason: str) -> CannotOpen:
        with self._lock:
            slot.failure, slot.failed_at = reason, self._monotonic()
        log.warning("business %s cannot be opened: %s", slot.name, reason)
        return CannotOpen(reason)

    def _closable(self, slot: _Slot) -> bool:
        opened = slot.opened
        return opened is not None and slot.users == 0 and opened.worker.idle()

    def _surplus(self) -> list[tuple[_Slot, Opened]]:
        """Under the lock: detach the least recently used idle ones over `max_open`."""
        open_now = [slot for slot in self._slots.values() if slot.opened is not None]
        over = len(open_now) - self.bounds.max_open
        idle = sorted((s for s in open_now if self._closable(s)), key=lambda s: s.last_used)
        return [self._detach(slot) for slot in idle[: max(0, over)]]

    def _detach(self, slot: _Slot) -> tuple[_Slot, Opened]:
        opened, slot.opened = slot.opened, None
        if opened is None:  # callers pick open ones, under the lock
            raise RuntimeError(f"business {slot.name} is not open")
        return slot, opened

    def _close(self, detached: list[tuple[_Slot, Opened]]) -> None:
        for slot, opened in detached:
            if not opened.worker.stop(self._stop_grace):
                log.warning("business %s: a push was still running at shutdown", slot.name)
            try:
                opened.close()
            except Exception:  # the next ones are still closed
                log.exception("business %s: closing its state failed", slot.name)
            else:
                log.info("business %s closed", slot.name)

    def close_idle(self) -> list[str]:
        """Close the businesses idle for `idle_seconds`, and the least recently used idle ones
        over `max_open`; returns their names."""
        cutoff = self._monotonic() - self.bounds.idle_seconds
        with self._lock:
            idle = [
                self._detach(slot)
                for slot in self._slots.values()
                if self._closable(slot) and slot.last_used <= cutoff
            ]
            idle += self._surplus()
        self._close(idle)
        return [slot.name for slot, _ in idle]

    def start(self) -> OnDemand:
        """Close idle businesses in the background, a few times per `idle_seconds`."""
        interval = min(5.0, max(0.1, self.bounds.idle_seconds / 4))

        def sweep() -> None:
            while not self._stopping.wait(interval):
                try:
                    self.close_idle()
                except Exception:  # a bug must not end the sweeping silently
                    log.exception("closing idle businesses failed")

        self._sweeper = threading.Thread(target=sweep, name="webhook-idle", daemon=True)
        self._sweeper.start()
        return self

    def stop(self) -> None:
        """Close every business: its push in progress may finish (within the grace)."""
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.join()
        with self._lock:
            every = [self._detach(s) for s in self._slots.values() if s.opened is not None]
        self._close(every)

    def refused(self, name: str) -> None:
        """Count a request answered 503 because the business could not be opened."""
        with self._lock:
            self._slots[name].stats.reject(503)

    def health(self, name: str) -> dict[str, Any]:
        """One business's health: its listener's when open, its counts when not."""
        slot = self._slots[name]
        with self._lock:
            opened = slot.opened
            if opened is not None:
                slot.users += 1
        if opened is None:
            return self._closed_health(slot)
        try:
            return {**opened.listener.health(), "open": True}
        finally:
            with self._lock:
                slot.users -= 1

    def _closed_health(self, slot: _Slot) -> dict[str, Any]:
        if slot.failure is not None:
            return {"status": "unavailable", "reason": slot.failure, "open": False}
        worker = slot.worker_state
        return {
            "status": "ok",
            "open": False,
            "queued_events": None,  # not known without opening its state
            "accepted": slot.stats.accepted,
            "duplicates": slot.stats.duplicates,
            "handshakes": slot.stats.handshakes,
            "handshakes_ignored": slot.stats.handshakes_ignored,
            "rejected": {str(k): v for k, v in sorted(slot.stats.rejected.items())},
            "worker": {"runs": worker.runs, "failures": worker.failures},
        }


class OnDemandBusiness:
    """What the installation's listener routes one business's path to: it opens the business
    on its first request."""

    def __init__(self, demand: OnDemand, slot: _Slot) -> None:
        self._demand = demand
        self._slot = slot

    def receive(self, body: bytes, signature: str | None) -> Answer:
        try:
            with self._demand.using(self._slot.name) as listener:
                return listener.receive(body, signature)
        except CannotOpen:
            self._demand.refused(self._slot.name)
            return Answer(503, f"business {self._slot.name} cannot take events now; retry later")

    def health(self) -> dict[str, Any]:
        return self._demand.health(self._slot.name)
