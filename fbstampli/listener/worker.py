"""The webhook worker: debounces wake-ups and runs the injected `drain` (the push fast path).

When the run lock is busy or a push fails the events stay queued and the run is
retried later; a cron run drains them anyway. Nothing is dropped here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fbstampli.errors import FbstampliError, LockHeldError

log = logging.getLogger(__name__)

Drain = Callable[[], int]  # one push pass; returns how many events are still queued


@dataclass(slots=True)
class WorkerState:
    runs: int = 0
    busy_retries: int = 0
    failures: int = 0
    running: bool = False
    last_outcome: str = "idle"


class Worker:
    """Runs `drain` `debounce` seconds after the last wake-up, one at a time, retrying on failure.

    A steady trickle of events cannot starve it: a run starts at most
    `max_delay` after the first wake-up it serves. A busy run lock or a
    failure is retried with a doubling delay up to `retry_max`; the events
    stay in the store meanwhile.
    """

    def __init__(
        self,
        drain: Drain,
        *,
        debounce: float,
        max_delay: float | None = None,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        slots: threading.Semaphore | None = None,
    ) -> None:
        """`slots`: shared by several businesses' workers, so only so many push at once."""
        self._drain = drain
        self._slots = slots
        self._debounce = max(0.0, debounce)
        self._max_delay = max_delay if max_delay is not None else max(10.0, 5 * self._debounce)
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._monotonic = monotonic
        self._cond = threading.Condition()
        self._due: float | None = None
        self._first_wake: float | None = None
        self._not_before = 0.0
        self._retry_delay = retry_initial
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="webhook-worker", daemon=True)
        self.state = WorkerState()

    def start(self) -> Worker:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Something was queued: run `debounce` seconds from now (not before a pending retry)."""
        with self._cond:
            now = self._monotonic()
            if self._first_wake is None:
                self._first_wake = now
            due = min(now + self._debounce, self._first_wake + self._max_delay)
            self._due = max(due, self._not_before)
            self._cond.notify_all()

    def idle(self) -> bool:
        """No push running or due: its business may be closed until its next callback."""
        with self._cond:
            return self._due is None and not self.state.running

    def stop(self, timeout: float | None = None) -> bool:
        """Stop scheduling; a run in progress finishes (bounded by `timeout`). True if stopped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _retry_later(self, outcome: str) -> None:
        with self._cond:
            delay = self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self._retry_max)
            self._not_before = self._monotonic() + delay
            self._due = max(self._due or 0.0, self._not_before)
            self.state.last_outcome = outcome

    def _next_run(self) -> bool:
        with self._cond:
            while not self._stopping:
                now = self._monotonic()
                if self._due is not None and now >= self._due:
                    self._due = None
                    self._first_wake = None
                    self.state.running = True
                    return True
                self._cond.wait(None if self._due is None else self._due - now)
            return False

    def _slot_taken(self) -> bool:
        """Wait for a push slot (when slots are shared); False when stopping first."""
        if self._slots is None:
            return True
        while not self._slots.acquire(timeout=0.2):
            if self._stopping:  # the events stay queued for the next run
                self.state.running = False
                return False
        return True

    def _loop(self) -> None:
        while self._next_run():
            if not self._slot_taken():
                break
            try:
                remaining = self._drain()
            except LockHeldError:
                self.state.busy_retries += 1
                self._retry_later("waiting for the run lock")
                log.info("another run holds the lock; queued events wait for it or for a retry")
            except FbstampliError as error:
                self.state.failures += 1
                self._retry_later(f"failed: {error}")
                log.warning("webhook push failed, retrying later: %s", error)
            except Exception:  # a bug must not end the fast path silently: log it, retry later
                self.state.failures += 1
                self._retry_later("failed: internal error (see the log)")
                log.exception("webhook push failed with an internal error; retrying later")
            else:
                self.state.runs += 1
                self.state.last_outcome = "ok"
                with self._cond:
                    self._retry_delay = self._retry_initial
                    self._not_before = 0.0
                if remaining and self._due is None:
                    self._retry_later("events still queued")
            finally:
                self.state.running = False
                if self._slots is not None:
                    self._slots.release()
