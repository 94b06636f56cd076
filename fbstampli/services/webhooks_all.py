"""`serve-webhook --all`: one listener for every business of an installation, each business
with its own worker pushing under its own run lock (the command of `cli/webhooks.py`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from fbstampli.errors import ConfigError, FbstampliError
from fbstampli.installation import BusinessHome, business_options
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.services.business import every_business

if TYPE_CHECKING:
    from fbstampli.config import WebhookSettings
    from fbstampli.listener import InstallationListener, OnDemand, Open, Opened, Worker, WorkerState

log = logging.getLogger(__name__)


def _worker_state(worker: Worker) -> WorkerState:
    return worker.state


def serve_webhook_all(options: Options, *, host: str | None, port: int | None) -> RunReport:
    """Serve every business's callbacks on one port until SIGTERM/SIGINT (`serve-webhook --all`).

    Events arrive into each business's store at once; its own worker pushes
    them `debounce_seconds` later under its own run lock. On shutdown the
    listener stops accepting first, then each push in progress may finish.
    """
    from fbstampli.signals import stop_signals

    stop = threading.Event()
    report = RunReport("serve-webhook")
    with (
        installation_listener(options, host=host, port=port, report=report) as listener,
        stop_signals(stop),
    ):
        for name in listener.listeners:
            log.info("business %s: listening on %s", name, listener.url(name))
        log.info("%d businesses known; each opened at its first callback", len(listener.listeners))
        while not stop.wait(0.5):
            pass
    return report


@dataclass(slots=True)
class _Served:
    """What the installation's businesses bring to the one listener: known by name at start,
    opened on demand."""

    pushes: threading.Semaphore  # shared by the workers: so many push at once
    openers: dict[str, Open] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    refusals: list[FbstampliError] = field(default_factory=list)


def _know_business(
    stack: ExitStack, options: Options, business: BusinessHome, served: _Served, report: RunReport
) -> None:
    """Take one business's listener lock (held by `stack`) and record how to open it later;
    or record why it cannot be served. Its state is not opened here."""
    from fbstampli.lock import listener_lock
    from fbstampli.runtime import require_home

    name = business.name
    try:
        inner = business_options(options, business)  # its home checked first
        require_home(inner.paths())
        stack.enter_context(listener_lock(inner.paths().listener_lock, holder="serve-webhook"))
    except FbstampliError as error:
        served.unavailable[name] = str(error)
        served.refusals.append(error)
        report.problems.append(f"business {name} not served: {error}")
        log.warning("business %s is not served: %s", name, error)
        return
    served.openers[name] = partial(_open_business, inner, served.pushes)


def _open_business(inner: Options, pushes: threading.Semaphore) -> Opened:
    """What a single-home `serve-webhook` holds (its open state, a worker draining under the
    business's own run lock), for its first callback."""
    from fbstampli.listener import Listener, Opened, Worker
    from fbstampli.runtime import open_runtime
    from fbstampli.services.webhooks import LISTENER_WRITE_WAIT_SECONDS, drain
    from fbstampli.store import events as hooks

    with ExitStack() as opened:
        rt = opened.enter_context(open_runtime(inner, lock=False))
        rt.store.wait_for_writers(LISTENER_WRITE_WAIT_SECONDS)
        debounce = rt.settings.webhook.debounce_seconds
        worker = Worker(partial(drain, inner), debounce=debounce, slots=pushes)
        listener = Listener(
            rt.store,
            wake=worker.wake,
            max_body_bytes=rt.settings.webhook.max_body_bytes,
            worker_state=partial(_worker_state, worker),
            serve=False,
            refuse_other_accounts=True,
        )
        leftovers = hooks.queue_state(rt.store).queued > 0
        return Opened(listener, worker, opened.pop_all().close, leftovers)


def _bind(
    front: WebhookSettings, served: _Served, host: str | None, port: int | None
) -> tuple[InstallationListener, OnDemand]:
    """The installation's listener on the given address, else the one its own config names,
    and its businesses, opened on demand within the bounds that config sets."""
    from fbstampli.listener import Bounds, InstallationListener, OnDemand
    from fbstampli.services.webhooks import SHUTDOWN_GRACE_SECONDS

    bounds = Bounds(max_open=front.max_open_businesses, idle_seconds=front.idle_close_seconds)
    demand = OnDemand(served.openers, bounds, stop_grace=SHUTDOWN_GRACE_SECONDS)
    bind_host = host or front.host
    bind_port = front.port if port is None else port
    try:
        listener = InstallationListener(
            demand.receivers(),
            unavailable=served.unavailable,
            host=bind_host,
            port=bind_port,
            max_body_bytes=front.max_body_bytes,
        )
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {bind_host}:{bind_port} ({error.strerror}); "
            "choose another --host/--port or stop what uses it"
        ) from None
    return listener, demand


def _add_figures(report: RunReport, demand: OnDemand, listener: InstallationListener) -> None:
    for stats, worker in demand.stats().values():
        report.add("events_accepted", stats.accepted)
        report.add("events_duplicate", stats.duplicates)
        report.add("handshakes", stats.handshakes)
        report.add("rejected", sum(stats.rejected.values()))
        report.add("push_runs", worker.runs)
    report.add("rejected", sum(listener.stats.rejected.values()))
    report.add("businesses_opened", demand.opens)
    for name, reason in demand.failures().items():
        report.problems.append(f"business {name} not served: {reason}")


@contextmanager
def installation_listener(
    options: Options, *, host: str | None, port: int | None, report: RunReport
) -> Iterator[InstallationListener]:
    """The one listener of an installation, started; stopped (and its figures added to
    `report`) on the way out.

    Each business is known at start by its name and home, and its listener
    lock is taken (a second listener on it exits at once); its state is not
    opened. Its first callback opens what a single-home `serve-webhook` would
    hold: its state and its own worker draining under its own run lock; when
    idle it is closed again (`webhook.idle_close_seconds`, at most
    `webhook.max_open_businesses` open: `listener.on_demand`), and at most
    `webhook.pushes_at_once` businesses push at once. One that cannot
    be served (another listener has it, a foreign home, a lost key) answers 503,
    so FreshBooks keeps its events for later; the others are served. Host and
    port come from the arguments, else from the installation folder's own
    config (127.0.0.1:8787 by default), as do the bounds.
    """
    from fbstampli.runtime import load_options_settings

    businesses = every_business(options)
    front = load_options_settings(options).webhook
    with ExitStack() as stack:
        served = _Served(threading.BoundedSemaphore(front.pushes_at_once))
        for business in businesses:
            _know_business(stack, options, business, served, report)
        if served.refusals and not served.openers:  # e.g. a second `serve-webhook --all`
            raise served.refusals[0]
        listener, demand = _bind(front, served, host, port)
        demand.start()
        listener.start()
        try:
            yield listener
        finally:
            listener.stop()
            demand.stop()
        _add_figures(report, demand, listener)
