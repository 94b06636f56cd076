"""Stopping long-running commands cleanly when told to.

`serve-webhook` and the sandboxes run until stopped. systemd and `kill` send
SIGTERM, a terminal sends SIGINT; both should end in the same orderly way, so
that a queue is drained and a temporary folder removed either way.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` (main thread only); the old handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        # Not `stop.set()` here: the handler runs in the main thread between two bytecodes,
        # perhaps while that thread holds the event's own lock inside `wait`, and set()
        # would wait for it forever. Another thread simply waits its turn.
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# Set (once, from a signal handler: a plain assignment is safe there) when this process is
# being stopped for good: `sync --all` spent a business's time budget. Waits that only tidy
# up, such as joining a reader still inside a request nobody answers, are then skipped,
# since the process ends as soon as the run is unwound and recorded.
_stopping = [False]


def mark_stopping() -> None:
    _stopping[0] = True


def stopping() -> bool:
    """Whether this process is being stopped (see `mark_stopping`)."""
    return _stopping[0]
