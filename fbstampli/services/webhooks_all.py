"""`serve-webhook --all`: one listener for every business of an installation, each business
with its own worker pushing under its own run lock (the command of `cli/webhooks.py`)."""

from __future__ import annotations

import logging
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
    from fbstampli.listener import InstallationListener, Listener, Worker, WorkerState

log = logging.getLogger(__name__)


def _worker_state(worker: Worker) -> WorkerState:
    return worker.state


def serve_webhook_all(options: Options, *, host: str | None, port: int | None) -> RunReport:
    """Serve every business's callbacks on one port until SIGTERM/SIGINT (`serve-webhook --all`).

    Events arrive into each business's store at once; its own worker pushes
    them `debounce_seconds` later under its own run lock. On shutdown the
    listener stops accepting first, then each push in progress may finish.
    """
    import threading

    from fbstampli.signals import stop_signals

    stop = threading.Event()
    report = RunReport("serve-webhook")
    with (
        installation_listener(options, host=host, port=port, report=report) as listener,
        stop_signals(stop),
    ):
        for name in listener.listeners:
            log.info("business %s: listening on %s", name, listener.url(name))
        while not stop.wait(0.5):
            pass
    return report


@dataclass(slots=True)
class _Served:
    """What the installation's businesses bring to the one listener."""

    listeners: dict[str, Listener] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    refusals: list[FbstampliError] = field(default_factory=list)


def _serve_business(
    stack: ExitStack, options: Options, business: BusinessHome, served: _Served, report: RunReport
) -> None:
    """Open one business as a single-home `serve-webhook` would (its listener lock, its state,
    its worker), the lock and state held by `stack`; or record why it cannot be served."""
    from fbstampli.listener import Listener, Worker
    from fbstampli.lock import listener_lock
    from fbstampli.runtime import open_runtime, require_home
    from fbstampli.services.webhooks import LISTENER_WRITE_WAIT_SECONDS, drain
    from fbstampli.store import events as hooks

    name = business.name
    try:
        inner = business_options(options, business)  # its home checked first
        require_home(inner.paths())
        opened = ExitStack()
        with opened:
            opened.enter_context(listener_lock(inner.paths().listener_lock, holder="serve-webhook"))
            rt = opened.enter_context(open_runtime(inner, lock=False))
            rt.store.wait_for_writers(LISTENER_WRITE_WAIT_SECONDS)
            stack.enter_context(opened.pop_all())
    except FbstampliError as error:
        served.unavailable[name] = str(error)
        served.refusals.append(error)
        report.problems.append(f"business {name} not served: {error}")
        log.warning("business %s is not served: %s", name, error)
        return
    worker = Worker(partial(drain, inner), debounce=rt.settings.webhook.debounce_seconds)
    served.workers[name] = worker
    served.listeners[name] = Listener(
        rt.store,
        wake=worker.wake,
        max_body_bytes=rt.settings.webhook.max_body_bytes,
        worker_state=partial(_worker_state, worker),
        serve=False,
        refuse_other_accounts=True,
    )
    if hooks.queue_state(rt.store).queued or hooks.pending_verifiers(rt.store):
        served.leftovers.append(name)


def _bind(
    options: Options, served: _Served, host: str | None, port: int | None
) -> InstallationListener:
    """The installation's listener on the given address, else the one its own config names."""
    from fbstampli.listener import InstallationListener
    from fbstampli.runtime import load_options_settings

    front = load_options_settings(options).webhook
    bind_host = host or front.host
    bind_port = front.port if port is None else port
    try:
        return InstallationListener(
            served.listeners,
            unavailable=served.unavailable,
            host=bind_host,
            port=bind_port,
            max_body_bytes=max(
                (each.max_body_bytes for each in served.listeners.values()),
                default=front.max_body_bytes,
            ),
        )
    except OSError as error:
        raise ConfigError(
            f"cannot listen on {bind_host}:{bind_port} ({error.strerror}); "
            "choose another --host/--port or stop what uses it"
        ) from None


def _add_figures(report: RunReport, served: _Served, listener: InstallationListener) -> None:
    for name, each in served.listeners.items():
        stats = each.stats
        report.add("events_accepted", stats.accepted)
        report.add("events_duplicate", stats.duplicates)
        report.add("handshakes", stats.handshakes)
        report.add("rejected", sum(stats.rejected.values()))
        report.add("push_runs", served.workers[name].state.runs)
    report.add("rejected", sum(listener.stats.rejected.values()))


@contextmanager
def installation_listener(
    options: Options, *, host: str | None, port: int | None, report: RunReport
) -> Iterator[InstallationListener]:
    """The one listener of an installation, started, with a worker per business; stopped (and
    its figures added to `report`) on the way out.

    Each business gets what a single-home `serve-webhook` would hold: its
    listener lock, its open state, its own worker draining under its own run
    lock. One that cannot be opened (another listener has it, a lost key) is
    left out with a warning and answers 503, so FreshBooks keeps its events
    for later; the others are served. Host and port come from the arguments,
    else from the installation folder's own config (127.0.0.1:8787 by default).
    """
    from fbstampli.services.webhooks import SHUTDOWN_GRACE_SECONDS

    businesses = every_business(options)
    with ExitStack() as stack:
        served = _Served()
        for business in businesses:
            _serve_business(stack, options, business, served, report)
        if served.refusals and not served.listeners:  # e.g. a second `serve-webhook --all`
            raise served.refusals[0]
        listener = _bind(options, served, host, port)
        for worker in served.workers.values():
            worker.start()
        listener.start()
        for name in served.leftovers:
            served.workers[name].wake()  # left over from before a restart
        try:
            yield listener
        finally:
            listener.stop()
            for name, worker in served.workers.items():
                if not worker.stop(SHUTDOWN_GRACE_SECONDS):
                    log.warning("business %s: a push was still running at shutdown", name)
        _add_figures(report, served, listener)
