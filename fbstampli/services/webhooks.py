"""FreshBooks webhooks: registering callbacks (`webhooks register|list|delete|verify`) and
serving them (`serve-webhook`), the commands of `cli/webhooks.py`.

The listener (`fbstampli.listener`) only queues; this module gives its worker
the one thing it runs, `drain`: push the objects the queued events name,
under the run lock like any other run. Handshakes are not the worker's
business: the `webhooks` command that awaits one confirms it (a forged flood
cannot make the worker hold the lock or call FreshBooks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from fbstampli.errors import ConfigError, RemoteError
from fbstampli.models import WEBHOOK_RESOURCES
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime, require_home

if TYPE_CHECKING:
    from fbstampli.freshbooks.parse import Callback
    from fbstampli.listener import Listener, Worker

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = WEBHOOK_RESOURCES  # the bare resource subscribes to create/update/delete
HANDSHAKE_WAIT_SECONDS = 5.0  # how long register/verify wait for the listener to store a verifier
# How long a handshake is accepted after register/verify --resend asked for it; a late one is
# then confirmed by `webhooks verify ID`. Outside a window the listener keeps no handshake.
HANDSHAKE_WINDOW_SECONDS = 600.0
# While FreshBooks answers a registration it POSTs the handshake of a callback id we do not
# know yet: any id is admitted for this long (capped in number), then only the ids returned.
REGISTER_PHASE_SECONDS = 120.0
LOCK_WAIT_SECONDS = 10.0  # serve-webhook's worker holds the run lock for seconds at a time


@runtime_checkable
class CallbackApi(Protocol):
    """The callbacks part of `FreshBooksClient`, so fakes can stand in."""

    def register_callback(self, event: str, uri: str) -> Callback: ...

    def list_callbacks(self) -> list[Callback]: ...

    def verify_callback(self, callback_id: int, verifier: str) -> Callback: ...

    def resend_verification(self, callback_id: int) -> None: ...

    def delete_callback(self, callback_id: int) -> None: ...


def callbacks_api(rt: Runtime) -> CallbackApi:
    """The run's one FreshBooks client (one token manager: refresh tokens are single-use)."""
    client = rt.freshbooks()
    if not isinstance(client, CallbackApi):
        raise ConfigError("this FreshBooks connection cannot manage webhook callbacks")
    return client


def confirm_pending_verifiers(rt: Runtime, only: set[int] | None = None) -> dict[int, str]:
    """PUT each handshake's verifier back to FreshBooks; keep those it accepts.

    Runs in the `webhooks` command that awaited the handshake, under the run
    lock it holds anyway (the PUT may refresh the token), once per command:
    never from the listener, never in a retry loop. A refused verifier (a
    forged handshake, or a callback deleted meanwhile) is forgotten; one that
    could not be sent stays pending for `webhooks verify ID`. Returns id -> outcome.
    """
    from fbstampli.store import events as hooks

    outcomes: dict[int, str] = {}
    pending = hooks.pending_candidates(rt.store)
    if not pending:
        return outcomes
    api = callbacks_api(rt)
    for callback_id, codes in sorted(pending.items()):
        if only is None or callback_id in only:
            outcomes[callback_id] = _try_candidates(rt, api, callback_id, codes)
    hooks.settle_handshake_window(rt.store)
    return outcomes


def _try_candidates(rt: Runtime, api: CallbackApi, callback_id: int, codes: list[str]) -> str:
    """PUT each code a handshake brought for `callback_id` until FreshBooks accepts one.

    Several are kept (issue #25): a forged handshake no longer replaces the genuine code.
    """
    from fbstampli.store import events as hooks

    for verifier in codes:
        try:
            api.verify_callback(callback_id, verifier)
        except RemoteError as error:
            hooks.drop_pending_verifier(rt.store, callback_id, verifier)
            log.warning("FreshBooks refused a verifier for callback %d: %s", callback_id, error)
            continue
        hooks.confirm_verifier(rt.store, callback_id, verifier)
        log.info("callback %d verified", callback_id)
        return "verified"
    return "refused"


def _ask_again(rt: Runtime, api: CallbackApi, callback_ids: set[int]) -> None:
    """Have FreshBooks resend the codes of `callback_ids`, await and confirm them, once.

    Issue #25: forged handshakes can fill the any-id phase of a registration before
    the genuine one arrives. Now the ids are known, only their handshakes are kept.
    """
    from fbstampli.store import events as hooks

    hooks.open_handshake_window(rt.store, HANDSHAKE_WINDOW_SECONDS, callback_ids)
    asked = set()
    for callback_id in sorted(callback_ids):
        try:
            api.resend_verification(callback_id)
            asked.add(callback_id)
        except RemoteError as error:
            log.warning("FreshBooks would not resend callback %d's code: %s", callback_id, error)
    if asked:
        _await_handshakes(rt, asked)
        confirm_pending_verifiers(rt, asked)


def _await_handshakes(rt: Runtime, callback_ids: set[int]) -> None:
    """Give the listener a moment: FreshBooks POSTs the verifier right after it answers us."""
    from fbstampli.store import events as hooks

    deadline = rt.clock.monotonic() + HANDSHAKE_WAIT_SECONDS
    while rt.clock.monotonic() < deadline:
        arrived = (
            hooks.pending_verifiers(rt.store).keys() | hooks.confirmed_verifiers(rt.store).keys()
        )
        if callback_ids <= arrived:
            return
        rt.clock.sleep(0.1)


def _unverified_hint(callback_id: int) -> str:
    return (
        f"callback {callback_id} is not verified: make sure serve-webhook is reachable at its URL, "
        f"then run `fbstampli webhooks verify {callback_id} --resend`"
    )


def _url_scheme(url: str) -> str:
    """The scheme of a callback URL that can reach serve-webhook; a usage error otherwise."""
    from urllib.parse import urlsplit

    expected = f"--url {url!r}: expected an absolute https URL that reaches serve-webhook"
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("https", "http") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:  # a broken IPv6 host, a port that is not a number
        raise ConfigError(expected) from None
    if not usable:
        raise ConfigError(expected)
    return parts.scheme


def _report_verified(
    report: RunReport, callbacks: list[Callback], known: Mapping[int, str]
) -> None:
    """One item per callback of ours, and a hint for each FreshBooks has not verified."""
    for callback in callbacks:
        if callback.event not in WEBHOOK_EVENTS:
            continue
        verified = callback.callback_id in known
        report.items.append(
            {"callback_id": callback.callback_id, "event": callback.event, "verified": verified}
        )
        if verified:
            report.add("verified")
        else:
            report.problems.append(_unverified_hint(callback.callback_id))


def webhooks_register(options: Options, *, url: str) -> RunReport:
    """Register one callback per event (bill, bill_vendor) at `url`; skip ones that exist.

    FreshBooks sends the handshake while the registration is still open, so
    serve-webhook should already be running: it stores the verifier and this
    command confirms it at once. Only while this command waits are handshakes kept at all.
    """
    from fbstampli.store import events as hooks

    scheme = _url_scheme(url)
    report = RunReport("webhooks register")
    if scheme != "https":
        report.notes.append("the URL is not https: FreshBooks needs a TLS proxy in front")
    with open_runtime(options, lock_wait=LOCK_WAIT_SECONDS) as rt:
        api = callbacks_api(rt)
        existing = {(c.event, c.uri): c for c in api.list_callbacks()}
        created: list[Callback] = []
        try:
            for event in WEBHOOK_EVENTS:
                callback = existing.get((event, url))
                if callback is None:
                    if not created:  # the handshake arrives before FreshBooks answers
                        hooks.open_handshake_window(rt.store, REGISTER_PHASE_SECONDS, None)
                    callback = api.register_callback(event, url)
                    created.append(callback)
                    rt.store.audit(
                        "webhook_registered", detail=f"callback {callback.callback_id} {event}"
                    )
                    report.add("registered")
                else:
                    report.add("existing")
        finally:
            if created:  # from now on only the ids FreshBooks gave us
                ids = {c.callback_id for c in created}
                hooks.open_handshake_window(rt.store, HANDSHAKE_WINDOW_SECONDS, ids)
        ids = {c.callback_id for c in created}
        if ids:
            _await_handshakes(rt, ids)
        confirm_pending_verifiers(rt, ids)
        unverified = ids - hooks.confirmed_verifiers(rt.store).keys()
        if unverified:
            _ask_again(rt, api, unverified)
            hooks.release_handshake_window(rt.store)  # a late code waits for `verify ID`
        ours = [*created, *(c for c in existing.values() if c.uri == url)]
        _report_verified(report, ours, hooks.confirmed_verifiers(rt.store))
    registered = report.counts.get("registered", 0)
    confirmed = report.counts.get("verified", 0)
    report.summary.append(
        f"Registered {registered} new callback(s) for {url}; {confirmed} of "
        f"{len(report.items)} verified."
        + (" Next: `fbstampli serve-webhook` keeps them coming." if confirmed else "")
    )
    return report


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """One FreshBooks callback of `webhooks list`, and whether this home holds its verifier."""

    callback_id: int
    event: str
    uri: str
    verified: bool
    verifier_stored: bool


def webhooks_list(options: Options) -> list[CallbackRow]:
    """FreshBooks' callbacks, and whether this home holds each one's verifier."""
    from fbstampli.store import events as hooks

    with open_runtime(options, lock_wait=LOCK_WAIT_SECONDS) as rt:
        callbacks = callbacks_api(rt).list_callbacks()
        known = hooks.confirmed_verifiers(rt.store)
        return [
            CallbackRow(c.callback_id, c.event, c.uri, c.verified, c.callback_id in known)
            for c in callbacks
        ]


def webhooks_delete(options: Options, callback_id: int) -> RunReport:
    """Delete the callback at FreshBooks (gone already is fine) and forget its verifier."""
    from fbstampli.freshbooks.client import NotFoundError
    from fbstampli.store import events as hooks

    report = RunReport("webhooks delete")
    with open_runtime(options, lock_wait=LOCK_WAIT_SECONDS) as rt:
        try:
            callbacks_api(rt).delete_callback(callback_id)
            report.add("deleted")
            report.summary.append(f"Deleted callback {callback_id} in FreshBooks.")
        except NotFoundError:
            report.notes.append(f"FreshBooks has no callback {callback_id}; forgotten here")
        hooks.forget_verifiers(rt.store, callback_id)
        rt.store.audit("webhook_deleted", detail=f"callback {callback_id}")
    return report


def webhooks_verify(
    options: Options, callback_id: int, *, verifier: str | None, resend: bool
) -> RunReport:
    """Finish a handshake by hand: with the code, by asking for it again, or from the listener."""
    from fbstampli.logs import register_secret
    from fbstampli.store import events as hooks

    if verifier is not None and resend:
        raise ConfigError("give either --verifier CODE or --resend, not both")
    register_secret(verifier)
    report = RunReport("webhooks verify")
    with open_runtime(options, lock_wait=LOCK_WAIT_SECONDS) as rt:
        api = callbacks_api(rt)
        if verifier is not None:
            api.verify_callback(callback_id, verifier)
            hooks.confirm_verifier(rt.store, callback_id, verifier)
            hooks.settle_handshake_window(rt.store)
        else:
            if resend:
                hooks.open_handshake_window(rt.store, HANDSHAKE_WINDOW_SECONDS, {callback_id})
                api.resend_verification(callback_id)
                _await_handshakes(rt, {callback_id})
                hooks.release_handshake_window(rt.store)  # a late code waits for `verify ID`
            elif callback_id not in hooks.pending_verifiers(rt.store):
                raise ConfigError(
                    f"no verification code for callback {callback_id} has reached serve-webhook; "
                    "give --verifier CODE, or --resend with serve-webhook running"
                )
            confirm_pending_verifiers(rt, {callback_id})
        if callback_id in hooks.confirmed_verifiers(rt.store):
            report.add("verified")
            report.summary.append(f"Callback {callback_id} is verified.")
        elif resend:
            report.notes.append(
                f"FreshBooks was asked to resend the code of callback {callback_id}; when it "
                f"reaches serve-webhook, run `fbstampli webhooks verify {callback_id}` "
                "(within 10 minutes)"
            )
        else:
            report.problems.append(_unverified_hint(callback_id))
    return report


# ---- serve-webhook -------------------------------------------------------------------------------

DRAIN_LOCK_WAIT_SECONDS = 1.0  # queue behind a short run briefly; a cron run is retried later
SHUTDOWN_GRACE_SECONDS = 60.0  # a push in progress may finish; it is resumable if cut short


def drain(options: Options, *, lock_wait: float = DRAIN_LOCK_WAIT_SECONDS) -> int:
    """One worker pass under the run lock; returns how many events are still queued.

    Raises `LockHeldError` when another run holds the lock: the events stay
    queued and that run (cron's, with `only_events=False`) drains them too.
    """
    from fbstampli.services.sync import run_push
    from fbstampli.store import events as hooks

    with open_runtime(options, lock=True, lock_wait=lock_wait) as rt:
        if hooks.queue_state(rt.store).queued:
            report = run_push(rt, only_events=True)
            for problem in report.problems:
                log.warning("%s", problem)
        return hooks.queue_state(rt.store).queued


# A queued event is one short insert; a writer holding the state longer than this is a
# cron run's big commit, and FreshBooks is better answered 503 (it retries) than late.
LISTENER_WRITE_WAIT_SECONDS = 2.0


def _add_figures(report: RunReport, listener: Listener, worker: Worker) -> None:
    stats = listener.stats
    report.add("events_accepted", stats.accepted)
    report.add("events_duplicate", stats.duplicates)
    report.add("handshakes", stats.handshakes)
    report.add("handshakes_ignored", stats.handshakes_ignored)
    report.add("rejected", sum(stats.rejected.values()))
    report.add("push_runs", worker.state.runs)
    report.summary.append(
        f"Stopped listening: {stats.accepted} event(s) accepted, {stats.duplicates} "
        f"duplicate(s), {sum(stats.rejected.values())} rejected; {worker.state.runs} push "
        "run(s)."
    )


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
    from fbstampli.listener import Listener, Worker
    from fbstampli.lock import listener_lock
    from fbstampli.signals import stop_signals
    from fbstampli.store import events as hooks

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
        _add_figures(report, listener, worker)
        queued = hooks.queue_state(rt.store).queued
        if queued:
            report.notes.append(f"{queued} events left queued; the next push-bills sends them")
    return report
