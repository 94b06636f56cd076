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
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fbstampli.errors import FbstampliError, LockHeldError
from fbstampli.freshbooks.webhooks import (
    SIGNATURE_HEADER,
    WebhookEvent,
    parse_event,
    parse_verification,
    verify_signature,
)
from fbstampli.models import WEBHOOK_RESOURCES
from fbstampli.store import Store
from fbstampli.store import events as queue
from fbstampli.store.credentials import account_id as stored_account_id
from fbstampli.store.credentials import chosen_business as stored_business

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/freshbooks"
HEALTH_PATH = "/healthz"
HEALTH_STORE_WAIT = 1.0  # seconds /healthz waits for the store before answering from memory
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request; FreshBooks waits 10 s
# Open connections served at once; more are closed unanswered (FreshBooks retries).
MAX_CONNECTIONS = 64
RESOURCES = WEBHOOK_RESOURCES  # the events push-bills acts on
MAX_PENDING_VERIFIERS = 16  # unconfirmed handshakes kept in one window: forged ones cannot pile up
IGNORED_LOG_EVERY = 100  # a flood of unwanted handshakes is logged once per this many
MAX_FIELDS = 100

Drain = Callable[[], int]  # one push pass; returns how many events are still queued


# ---- the worker -------------------------------------------------------------------------------


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
    ) -> None:
        self._drain = drain
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

    def _loop(self) -> None:
        while self._next_run():
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


# ---- the listener -----------------------------------------------------------------------------


@dataclass(slots=True)
class ListenerStats:
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    handshakes: int = 0
    handshakes_ignored: int = 0  # arrived while no command awaited one: answered, nothing done
    rejected: dict[int, int] = field(default_factory=dict)
    last_event_at: str | None = None

    def reject(self, status: int) -> None:
        self.rejected[status] = self.rejected.get(status, 0) + 1


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    message: str


class _Serving:
    """The part every listener shares: a server thread, and the requests in flight that
    `stop` gives a grace period to finish."""

    def __init__(self) -> None:
        self._active = 0
        self._active_changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def _serve_in_thread(self, server: ThreadingHTTPServer) -> None:
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="webhook-listener",
            daemon=True,
        )
        self._thread.start()

    def _stop_serving(self, server: ThreadingHTTPServer, grace: float) -> None:
        """Stop accepting, give requests in flight `grace` seconds to finish, close the socket."""
        if self._thread is not None:
            server.shutdown()
            self._thread.join()
            self._thread = None
        with self._active_changed:
            self._active_changed.wait_for(lambda: self._active == 0, timeout=grace)
        server.server_close()

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        with self._active_changed:
            self._active += 1
        try:
            yield
        finally:
            with self._active_changed:
                self._active -= 1
                self._active_changed.notify_all()


class Listener(_Serving):
    """The HTTP server and what a request may do to the store (one short transaction).

    The store connection is shared by the request threads and used by one of
    them at a time; the worker's push uses its own connection.
    """

    def __init__(
        self,
        store: Store,
        *,
        wake: Callable[[], None],
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 65536,
        request_timeout: float = REQUEST_TIMEOUT,
        account_id: Callable[[], str | None] | None = None,
        worker_state: Callable[[], WorkerState] | None = None,
        serve: bool = True,
        refuse_other_accounts: bool = False,
    ) -> None:
        """`serve=False`: no socket of its own, for an `InstallationListener` to route to.
        `refuse_other_accounts`: an event naming another account or business is refused
        (403) instead of acknowledged, for a listener serving several businesses."""
        super().__init__()
        self.store = store
        self.wake = wake
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.stats = ListenerStats()
        self._account_id = account_id or (lambda: stored_account_id(store))
        self._worker_state = worker_state
        self._store_lock = threading.RLock()  # re-entered when a rejection is counted
        self._last_queue: queue.QueueState | None = None  # what health saw last
        self.refuse_other_accounts = refuse_other_accounts
        self._server = _Server((host, port), _Handler, self) if serve else None

    def _served(self) -> _Server:
        if self._server is None:
            raise TypeError("this listener has no socket of its own (serve=False)")
        return self._server

    def route(self, path: str) -> Listener | None:
        """Who receives a POST to `path`: this listener, on its one path."""
        return self if path == WEBHOOK_PATH else None

    def unrouted(self, path: str) -> Answer:
        return Answer(405 if path == HEALTH_PATH else 404, "not found")

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._served().server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{WEBHOOK_PATH}"

    def start(self) -> Listener:
        self._serve_in_thread(self._served())
        return self

    def stop(self, grace: float = 5.0) -> None:
        self._stop_serving(self._served(), grace)

    @contextmanager
    def _using_store(self) -> Iterator[Store]:
        with self._store_lock:
            yield self.store

    # -- what a request does ----------------------------------------------------------------

    def receive(self, body: bytes, signature: str | None) -> Answer:
        """Decide on one POSTed body: store a handshake or a verified event, or reject it."""
        form = _form(body)
        if form is None:
            return self._reject(400, "not a UTF-8 form-encoded body")
        if "verifier" in form:
            return self._handshake(body)
        if not {"name", "object_id", "account_id"} <= form.keys():
            return self._reject(400, "not a FreshBooks event")
        with self._using_store() as store:
            verifiers = list(queue.confirmed_verifiers(store).values())
        # Try every verifier even after a match, so timing does not tell which one matched.
        matches = [verify_signature(body, signature, verifier) for verifier in verifiers]
        if not any(matches):
            return self._reject(401, "signature does not match")
        event = parse_event(body)
        if event is None:
            return self._reject(400, "malformed event")
        if self.refuse_other_accounts:
            refusal = self._not_this_business(event)
            if refusal is not None:
                log.warning("refused %s for account %s: %s", event.name, event.account_id, refusal)
                return self._reject(403, refusal)
        if event.resource not in RESOURCES:
            with self._store_lock:
                self.stats.ignored += 1
            return Answer(200, "ignored: not a bill or bill_vendor event")
        with self._using_store() as store:
            ours = self._account_id()
            if ours and event.account_id != ours:
                self.stats.ignored += 1
                log.warning("ignored %s for account %s: not ours", event.name, event.account_id)
                return Answer(200, "ignored: another account")
            added = queue.enqueue_event(store, event.name, event.object_id, event.account_id)
            self.stats.last_event_at = store.now_text()
            if added:  # counted under the lock: request threads run concurrently
                self.stats.accepted += 1
            else:
                self.stats.duplicates += 1
        log.info("%s %d %s", event.name, event.object_id, "queued" if added else "queued already")
        self.wake()
        return Answer(200, "queued" if added else "queued already")

    def _not_this_business(self, event: WebhookEvent) -> str | None:
        """Why a correctly signed event is not this business's; None when it is.

        One login's verifiers may sign events of several businesses; only the
        account (and the business, when the event names one) chosen at login here
        may queue into this state. Refused, not acknowledged: nothing is stored.
        """
        with self._using_store() as store:
            chosen = stored_business(store)
        if chosen is None:
            return "this business has no FreshBooks login yet"
        if event.account_id != chosen.account_id:
            return "event names another account"
        named = event.business_id
        if named is not None and chosen.business_id and str(named) != chosen.business_id:
            return "event names another business"
        return None

    def _handshake(self, body: bytes) -> Answer:
        """Keep a handshake's verifier only if `webhooks register`/`verify --resend` awaits it.

        Anyone can POST a handshake. One nobody is waiting for is answered 202
        and counted, with nothing written and nothing woken: a flood costs one
        read each, never the run lock, never a request to FreshBooks. The
        command that opened the window confirms what arrived, once.
        """
        request = parse_verification(body)
        if request is None:
            return self._reject(400, "malformed verification request")
        with self._using_store() as store:
            outcome = queue.save_windowed_verifier(
                store, request.callback_id, request.verifier, max_pending=MAX_PENDING_VERIFIERS
            )
            if outcome == "unwanted":
                self.stats.handshakes_ignored += 1
                ignored = self.stats.handshakes_ignored
            else:
                self.stats.handshakes += 1
        if outcome == "unwanted":
            if ignored == 1 or ignored % IGNORED_LOG_EVERY == 0:
                log.warning(
                    "%d unexpected verification handshakes ignored (no webhooks register or "
                    "verify --resend was waiting for them)",
                    ignored,
                )
            return Answer(202, "no verification is awaited; ignored")
        log.info("verification handshake for callback %d received", request.callback_id)
        return Answer(200, "verification received")

    def _reject(self, status: int, message: str) -> Answer:
        self.count_rejection(status)
        return Answer(status, message)

    def count_rejection(self, status: int) -> None:
        with self._store_lock:
            self.stats.reject(status)

    def health(self) -> dict[str, Any]:
        """The listener's state; never stuck behind a request that waits on the database.

        When the store is busy, the queue figures of the last look are given
        with status "busy": a monitor learns the listener is alive, and why slow.
        """
        status = "ok"
        if self._store_lock.acquire(timeout=HEALTH_STORE_WAIT):
            try:
                self._last_queue = queue.queue_state(self.store)
            finally:
                self._store_lock.release()
        else:
            status = "busy"
        state = self._last_queue
        document: dict[str, Any] = {
            "status": status,
            "queued_events": state.queued if state else None,
            "last_event_at": state.last_event_at if state else None,
            "accepted": self.stats.accepted,
            "duplicates": self.stats.duplicates,
            "handshakes": self.stats.handshakes,
            "handshakes_ignored": self.stats.handshakes_ignored,
            "rejected": {str(k): v for k, v in sorted(self.stats.rejected.items())},
        }
        if self._worker_state is not None:
            worker = self._worker_state()
            document["worker"] = {
                "runs": worker.runs,
                "running": worker.running,
                "busy_retries": worker.busy_retries,
                "failures": worker.failures,
                "last_outcome": worker.last_outcome,
            }
        return document


def _form(body: bytes) -> dict[str, str] | None:
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return dict(pairs)


_LENGTH = re.compile(r"[0-9]{1,12}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 resets connections in a burst of deliveries

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        listener: Listener | InstallationListener,
    ) -> None:
        self.listener = listener
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, but only so many: idle or slow clients cannot use them up."""
        if not self._slots.acquire(blocking=False):
            self.listener.count_rejection(503)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a broken client connection is routine.
        # socketserver calls this from inside its except block, so exc_info is the error.
        log.debug("request from %s failed", client_address[0], exc_info=True)  # noqa: LOG014


class _Handler(BaseHTTPRequestHandler):
    """HTTP only: framing, limits and status codes; `Listener.receive` decides."""

    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes; do not stall the second
    server_version = "fbstampli-webhook"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.listener.request_timeout)  # slow clients: cut off
        self._watchdog: threading.Timer | None = None

    def handle_one_request(self) -> None:
        """One request, which must arrive whole within `request_timeout`.

        The socket timeout bounds each read only: a client sending a header line
        every few seconds would hold its thread for ever. The watchdog cuts the
        connection when the request is not in by then; reading it stops the watch.
        """
        self._watchdog = threading.Timer(self.server.listener.request_timeout, self._cut_off)
        self._watchdog.daemon = True
        self._watchdog.start()
        try:
            super().handle_one_request()
        finally:
            self._request_read()

    def _request_read(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _cut_off(self) -> None:
        log.info("a client from %s was too slow to send its request", self.client_address[0])
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        # Never the headers or the body: the signature and the verifier must not reach a log.
        log.debug("%s %s", self.address_string(), format % args)

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _send(self, status: int, document: dict[str, Any], *, close: bool = False) -> None:
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", "GET" if self._path() == HEALTH_PATH else "POST")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        # The body (if any) was not read, so the connection cannot carry another request.
        self.server.listener.count_rejection(status)
        self._send(status, {"error": message}, close=True)

    def do_GET(self) -> None:
        self._request_read()
        path = self._path()
        if path == HEALTH_PATH:
            with self.server.listener.in_flight():
                self._send(200, self.server.listener.health())
        elif self.server.listener.route(path) is not None:
            self._refuse(405, "use POST")
        else:
            self._refuse(404, "not found")

    def _other(self) -> None:
        path = self._path()
        if path == HEALTH_PATH or self.server.listener.route(path) is not None:
            self._refuse(405, "method not allowed")
        else:
            self._refuse(404, "not found")

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _other

    def do_POST(self) -> None:
        listener = self.server.listener
        target = listener.route(self._path())
        if target is None:
            unrouted = listener.unrouted(self._path())
            self._refuse(unrouted.status, unrouted.message)
            return
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send a Content-Length")
            return
        if len(self.headers.get_all("Content-Length") or []) > 1:
            # Two lengths: a proxy in front may frame the body by the other one (smuggling).
            self._refuse(400, "more than one Content-Length")
            return
        declared = self.headers.get("Content-Length")
        if declared is None:
            self._refuse(411, "send a Content-Length")
            return
        if not _LENGTH.fullmatch(declared.strip()):  # isdigit() would take "²"
            self._refuse(400, "bad Content-Length")
            return
        length = int(declared)
        if length > listener.max_body_bytes:
            self._refuse(413, f"body over {listener.max_body_bytes} bytes")
            return
        with listener.in_flight():
            try:
                body = self.rfile.read(length)
            except (TimeoutError, OSError):
                listener.count_rejection(408)
                self.close_connection = True
                log.info("a client from %s was too slow to send its body", self.client_address[0])
                return
            if len(body) < length:
                self.close_connection = True
                return
            self._request_read()
            try:
                answer = target.receive(body, self.headers.get(SIGNATURE_HEADER))
            except FbstampliError as error:
                # The store is busy or unusable: FreshBooks retries a 5xx, so nothing is lost.
                log.warning("could not queue a webhook: %s", error)
                answer = Answer(503, "cannot queue the event now; retry later")
            self._send(answer.status, {"result": answer.message}, close=answer.status >= 400)


# ---- several businesses on one port -----------------------------------------------------------

BUSINESS_PATH_PREFIX = WEBHOOK_PATH + "/"  # /webhooks/freshbooks/<name>


class InstallationListener(_Serving):
    """One socket for every business of an installation, each at a URL of its own.

    `/webhooks/freshbooks/<name>` is handed to that business's `Listener`
    (made with `serve=False, refuse_other_accounts=True`): its own store,
    verifiers and account, so an event is verified and queued in exactly one
    business's state. The framing and limits (`_Handler`) are shared. A
    business whose state could not be opened answers 503, so FreshBooks keeps
    retrying its events until it is back, while the others are served.
    """

    def __init__(
        self,
        listeners: dict[str, Listener],
        *,
        unavailable: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 65536,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        super().__init__()
        self.listeners = dict(listeners)
        self.unavailable = dict(unavailable or {})
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.stats = ListenerStats()  # what no business's listener counted: framing, unknown paths
        self._stats_lock = threading.Lock()
        self._server = _Server((host, port), _Handler, self)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def url(self, name: str) -> str:
        host, port = self.address
        return f"http://{host}:{port}{BUSINESS_PATH_PREFIX}{name}"

    def route(self, path: str) -> Listener | None:
        if not path.startswith(BUSINESS_PATH_PREFIX):
            return None
        return self.listeners.get(path[len(BUSINESS_PATH_PREFIX) :])

    def unrouted(self, path: str) -> Answer:
        name = path[len(BUSINESS_PATH_PREFIX) :] if path.startswith(BUSINESS_PATH_PREFIX) else ""
        if name in self.unavailable:
            return Answer(503, f"business {name} cannot take events now; retry later")
        return Answer(405 if path == HEALTH_PATH else 404, "not found")

    def start(self) -> InstallationListener:
        self._serve_in_thread(self._server)
        return self

    def stop(self, grace: float = 5.0) -> None:
        self._stop_serving(self._server, grace)

    def count_rejection(self, status: int) -> None:
        with self._stats_lock:
            self.stats.reject(status)

    def health(self) -> dict[str, Any]:
        """Every business's health under its name; "busy" or "degraded" when one is."""
        businesses = {name: listener.health() for name, listener in self.listeners.items()}
        for name, reason in self.unavailable.items():
            businesses[name] = {"status": "unavailable", "reason": reason}
        statuses = {document["status"] for document in businesses.values()}
        status = "degraded" if "unavailable" in statuses else "busy" if "busy" in statuses else "ok"
        return {
            "status": status,
            "businesses": businesses,
            "rejected": {str(k): v for k, v in sorted(self.stats.rejected.items())},
        }
