"""One business's listener: what a webhook request may do to its store (one short transaction).

An event is accepted when its signature matches any confirmed verifier; a
handshake is kept only while the command that asked for it waits (a window in
the state). The request thread never takes the run lock and never talks to
FreshBooks: it checks, commits one short transaction, answers and wakes the worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from fbstampli.freshbooks.webhooks import (
    WebhookEvent,
    parse_event,
    parse_verification,
    verify_signature,
)
from fbstampli.listener.http import (
    HEALTH_PATH,
    REQUEST_TIMEOUT,
    WEBHOOK_PATH,
    Answer,
    Handler,
    ListenerStats,
    Server,
    Serving,
)
from fbstampli.listener.worker import WorkerState
from fbstampli.models import WEBHOOK_RESOURCES
from fbstampli.store import Store
from fbstampli.store import events as queue
from fbstampli.store.credentials import account_id as stored_account_id
from fbstampli.store.credentials import chosen_business as stored_business

log = logging.getLogger(__name__)

HEALTH_STORE_WAIT = 1.0  # seconds /healthz waits for the store before answering from memory
RESOURCES = WEBHOOK_RESOURCES  # the events push-bills acts on
MAX_PENDING_VERIFIERS = 16  # unconfirmed handshakes kept in one window: forged ones cannot pile up
IGNORED_LOG_EVERY = 100  # a flood of unwanted handshakes is logged once per this many
MAX_FIELDS = 100


class Listener(Serving):
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
        self._server = Server((host, port), Handler, self) if serve else None

    def _served(self) -> Server:
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
            return Answer(200, "ignored: not a bill or bill_vendor event", signed=True)
        with self._using_store() as store:
            ours = self._account_id()
            if ours and event.account_id != ours:
                self.stats.ignored += 1
                log.warning("ignored %s for account %s: not ours", event.name, event.account_id)
                return Answer(200, "ignored: another account", signed=True)
            added = queue.enqueue_event(store, event.name, event.object_id, event.account_id)
            self.stats.last_event_at = store.now_text()
            if added:  # counted under the lock: request threads run concurrently
                self.stats.accepted += 1
            else:
                self.stats.duplicates += 1
        log.info("%s %d %s", event.name, event.object_id, "queued" if added else "queued already")
        self.wake()
        return Answer(200, "queued" if added else "queued already", signed=True)

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
