"""serve-webhook: the optional FreshBooks webhook listener, wired to the push fast path.

The listener (`fbstampli.webhook`) only queues; this module gives its worker
the one thing it runs, `drain`: push the objects the queued events name,
under the run lock like any other run. Handshakes are not its business: the
`webhooks` command that awaits one confirms it (a forged flood cannot make
this worker hold the lock or call FreshBooks).
"""

from __future__ import annotations

import logging
import threading

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import open_runtime, require_home

log = logging.getLogger(__name__)

LOCK_WAIT_SECONDS = 1.0  # queue behind a short run briefly; a cron run is retried later instead
SHUTDOWN_GRACE_SECONDS = 60.0  # a push in progress may finish; it is resumable if cut short


def drain(options: Options, *, lock_wait: float = LOCK_WAIT_SECONDS) -> int:
    """One worker pass under the run lock; returns how many events are still queued.

    Raises `LockHeldError` when another run holds the lock: the events stay
    queued and that run (cron's, with `only_events=False`) drains them too.
    """
    from fbstampli.services.push import run_push
    from fbstampli.store import webhooks as hooks

    with open_runtime(options, lock=True, lock_wait=lock_wait) as rt:
        if hooks.queue_state(rt.store).queued:
            report = run_push(rt, only_events=True)
            for problem in report.problems:
                log.warning("%s", problem)
        return hooks.queue_state(rt.store).queued


# A queued event is one short insert; a writer holding the state longer than this is a
# cron run's big commit, and FreshBooks is better answered 503 (it retries) than late.
LISTENER_WRITE_WAIT_SECONDS = 2.0


def serve_webhook(
    options: Options,
    *,
    host: str | None,
    port: int | None,
) -> RunReport:
    """Serve until SIGTERM/SIGINT; exit 0 with whatever is still queued left for the next run.

    Events arrive into the store at once; a push starts `debounce_seconds`
    after the last one. On shutdown the listener stops accepting first, then
    a push in progress is allowed to finish; queued events are never deleted.
    """
    from fbstampli.lock import listener_lock
    from fbstampli.signals import stop_signals
    from fbstampli.store import webhooks as hooks
    from fbstampli.webhook import Listener, Worker

    stop = threading.Event()
    report = RunReport("serve-webhook")

    require_home(options.paths())  # before the listener's lock file is made in it
    with (
        listener_lock(options.paths().listener_lock, holder="serve-webhook"),
        open_runtime(options, lock=False) as rt,
    ):
        settings = rt.settings.webhook
        rt.store.wait_for_writers(LISTENER_WRITE_WAIT_SECONDS)
        bind_host = host or settings.host
        bind_port = settings.port if port is None else port
        worker = Worker(lambda: drain(options), debounce=settings.debounce_seconds)
        try:
            listener = Listener(
                rt.store,
                wake=worker.wake,
                host=bind_host,
                port=bind_port,
                max_body_bytes=settings.max_body_bytes,
                worker_state=lambda: worker.state,
            )
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {bind_host}:{bind_port} ({error.strerror}); "
                "choose another --host/--port or stop what uses it"
            ) from None
        with stop_signals(stop):
            worker.start()
            listener.start()
            log.info("listening on %s", listener.url)
            if hooks.queue_state(rt.store).queued:
                worker.wake()  # left over from before a restart
            while not stop.wait(0.5):
                pass
            listener.stop()
            if not worker.stop(SHUTDOWN_GRACE_SECONDS):
                log.warning("a push was still running at shutdown; the next run resumes it")
        stats = listener.stats
        report.add("events_accepted", stats.accepted)
        report.add("events_duplicate", stats.duplicates)
        report.add("handshakes", stats.handshakes)
        report.add("handshakes_ignored", stats.handshakes_ignored)
        report.add("rejected", sum(stats.rejected.values()))
        report.add("push_runs", worker.state.runs)
        queued = hooks.queue_state(rt.store).queued
        if queued:
            report.notes.append(f"{queued} events left queued; the next push-bills sends them")
    return report
