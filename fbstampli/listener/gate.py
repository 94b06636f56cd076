"""Who gets a thread: the listener's connection budget, per client address and in total.

Finding 4 of issue #25: a handful of clients held every slot (keep-alive,
slowloris, a body at one byte a second) and no genuine delivery got through.
The rules, in the order they apply to a new connection:

- One client address runs at most `per_address` connections at once. Its next
  ones wait their turn, socket open and no thread, and start as its running ones
  end (a burst of deliveries from one FreshBooks host is served, a little later);
  each arrival cuts that address's oldest connection still reading after
  `slow_after` seconds (an idle kept connection, say) to make way. One that
  waited over `wait_limit` seconds is closed unanswered, and so are the ones
  over `waiting_per_address`.
- Connections that have not yet sent their whole request ("reading") may hold
  `reading` slots of the `total`, so the rest is kept for requests being
  answered. When the reading slots are full, the oldest connection of the
  address with most reading connections is cut, if it has been reading for
  `slow_after` seconds (a genuine delivery sends its request at once); when none
  has, the newcomer is closed unanswered (FreshBooks retries).

The server gives each connection a deadline for its whole request, so nothing
holds a slot for long even without a newcomer cutting it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Start = Callable[[Any, Any], None]  # (socket, client address): give it a thread


@dataclass(frozen=True, slots=True)
class Limits:
    total: int = 64  # connections running at once (one thread each)
    reading: int = 48  # of which still reading their request: the rest is kept for answering
    per_address: int = 16  # running at once from one client address
    waiting_per_address: int = 64  # queued behind them, socket open, no thread
    slow_after: float = 1.0  # seconds reading after which a connection may be cut for a newcomer
    wait_limit: float = 10.0  # seconds a queued connection may wait before it is closed


@dataclass(slots=True)
class _Running:
    host: str
    since: float
    reading: bool = True


class Gate:
    """The connection budget; `arrive`, `request_read` and `leave` are called by the server."""

    def __init__(
        self,
        start: Start,
        limits: Limits,
        *,
        on_refuse: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._start = start
        self._on_refuse = on_refuse
        self.limits = limits
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._running: dict[Any, _Running] = {}
        self._waiting: dict[str, deque[tuple[Any, Any, float]]] = {}
        self.cut = 0  # slow connections cut for a newcomer
        self.refused = 0  # closed unanswered: no room, or waited too long

    def arrive(self, request: Any, client_address: Any) -> None:
        """A new connection: start it, queue it behind its address's others, or close it."""
        host = str(client_address[0])
        with self._lock:
            if self._running_from(host) >= self.limits.per_address:
                queue = self._waiting.setdefault(host, deque())
                if len(queue) < self.limits.waiting_per_address:
                    # Its slowest reader (an idle kept connection, say) makes way for it.
                    self._cut_slowest([(s, r) for s, r in self._reading() if r.host == host])
                    queue.append((request, client_address, self._monotonic()))
                    return
                admitted = False
            else:
                admitted = self._make_room() and self._admit(request, host)
        if admitted:
            self._start(request, client_address)
        else:
            self._refuse(request)

    def request_read(self, request: Any) -> None:
        """The connection sent its whole request: it no longer counts as reading."""
        with self._lock:
            running = self._running.get(request)
            if running is not None:
                running.reading = False

    def request_started(self, request: Any) -> None:
        """A kept connection awaits its next request: reading again, from now."""
        with self._lock:
            running = self._running.get(request)
            if running is not None:
                running.reading, running.since = True, self._monotonic()

    def leave(self, request: Any) -> None:
        """The connection's thread ended: start the next one its address queued, if any."""
        with self._lock:
            running = self._running.pop(request, None)
            if running is None:
                return
            nxt, stale = self._next_waiting(running.host)
        for sock in stale:
            self._refuse(sock)
        if nxt is not None:
            self._start(*nxt)

    def reading_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._running.values() if r.reading)

    def close_waiting(self) -> None:
        """The server stops: close every queued connection."""
        with self._lock:
            queued = [item[0] for queue in self._waiting.values() for item in queue]
            self._waiting.clear()
        for sock in queued:
            _close(sock)

    # -- under the lock ------------------------------------------------------------------------

    def _running_from(self, host: str) -> int:
        return sum(1 for r in self._running.values() if r.host == host)

    def _admit(self, request: Any, host: str) -> bool:
        if len(self._running) >= self.limits.total:
            return False
        self._running[request] = _Running(host, self._monotonic())
        return True

    def _reading(self) -> list[tuple[Any, _Running]]:
        return [(sock, r) for sock, r in self._running.items() if r.reading]

    def _make_room(self) -> bool:
        """True when a reading slot is free, after cutting the slowest reader if need be."""
        reading = self._reading()
        return len(reading) < self.limits.reading or self._cut_slowest(reading)

    def _cut_slowest(self, reading: list[tuple[Any, _Running]]) -> bool:
        """Cut the oldest of the busiest address among `reading` that has read for
        `slow_after` seconds; False when none has."""
        old = self._monotonic() - self.limits.slow_after
        slow = [(sock, r) for sock, r in reading if r.since <= old]
        if not slow:
            return False
        per_host: dict[str, int] = {}
        for _, r in reading:
            per_host[r.host] = per_host.get(r.host, 0) + 1
        # Oldest of the busiest address: a genuine sender rarely has many slow connections.
        victim, record = min(slow, key=lambda item: (-per_host[item[1].host], item[1].since))
        record.reading = False  # it is leaving; its thread ends as soon as the read fails
        self.cut += 1
        log.info("cut a slow connection from %s to make room", record.host)
        with contextlib.suppress(OSError):
            victim.shutdown(socket.SHUT_RDWR)
        return True

    def _next_waiting(self, host: str) -> tuple[tuple[Any, Any] | None, list[Any]]:
        queue = self._waiting.get(host)
        stale: list[Any] = []
        nxt: tuple[Any, Any] | None = None
        too_old = self._monotonic() - self.limits.wait_limit
        while queue and nxt is None:
            request, client_address, since = queue.popleft()
            if since < too_old or not (self._make_room() and self._admit(request, host)):
                stale.append(request)
            else:
                nxt = (request, client_address)
        if queue is not None and not queue:
            del self._waiting[host]
        return nxt, stale

    def _refuse(self, request: Any) -> None:
        with self._lock:
            self.refused += 1
        self._on_refuse()
        _close(request)


def _close(request: Any) -> None:
    with contextlib.suppress(OSError):
        request.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        request.close()
