"""The FreshBooks webhook listener: verify, enqueue, answer fast; a worker pushes later.

One path, `POST /webhooks/freshbooks`, for every callback. FreshBooks only
tells us a callback's id in the handshake it sends *while* the registration
request is still open, so a URL cannot name the id; and events carry no
callback id at all. An event is therefore accepted when its signature matches
any confirmed verifier (there is one per registered event, two in practice).

The request thread never takes the run lock and never talks to FreshBooks: it
checks, commits one short transaction and answers. A handshake is kept only
while the command that asked for it waits (a window in the state); that
command confirms it, so the worker never touches handshakes. The `Worker` thread
debounces and calls the injected `drain` (the push fast path, under the run
lock); when the lock is busy the events stay queued and are retried, and a
cron run drains them anyway. Nothing is ever dropped from the queue here.

`http` frames requests and enforces the limits, `business` decides for one
business's store, `installation` routes several businesses on one port,
`on_demand` opens each of them at its first callback and closes it when idle,
and `worker` debounces the pushes.
"""

from fbstampli.listener.business import Listener
from fbstampli.listener.http import (
    HEALTH_PATH,
    MAX_CONNECTIONS,
    REQUEST_TIMEOUT,
    WEBHOOK_PATH,
    Answer,
    ListenerStats,
)
from fbstampli.listener.installation import BUSINESS_PATH_PREFIX, InstallationListener
from fbstampli.listener.on_demand import Bounds, OnDemand, Open, Opened
from fbstampli.listener.worker import Drain, Worker, WorkerState

__all__ = [
    "BUSINESS_PATH_PREFIX",
    "HEALTH_PATH",
    "MAX_CONNECTIONS",
    "REQUEST_TIMEOUT",
    "WEBHOOK_PATH",
    "Answer",
    "Bounds",
    "Drain",
    "InstallationListener",
    "Listener",
    "ListenerStats",
    "OnDemand",
    "Open",
    "Opened",
    "Worker",
    "WorkerState",
]
