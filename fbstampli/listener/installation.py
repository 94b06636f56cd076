"""Several businesses on one port: each at a URL of its own, each verified and queued alone."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

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

BUSINESS_PATH_PREFIX = WEBHOOK_PATH + "/"  # /webhooks/freshbooks/<name>


class Routed(Protocol):
    """One business behind the installation's listener: a `Listener`, or an `OnDemandBusiness`
    that opens it on its first request."""

    def receive(self, body: bytes, signature: str | None) -> Answer: ...

    def health(self) -> dict[str, Any]: ...


class InstallationListener(Serving):
    """One socket for every business of an installation, each at a URL of its own.

    `/webhooks/freshbooks/<name>` is handed to that business's `Listener`
    (made with `serve=False, refuse_other_accounts=True`): its own store,
    verifiers and account, so an event is verified and queued in exactly one
    business's state. The framing and limits (`Handler`) are shared. A
    business whose state could not be opened answers 503, so FreshBooks keeps
    retrying its events until it is back, while the others are served.
    `serve-webhook --all` routes to `OnDemandBusiness`es (`on_demand`), each
    opened on its first request and closed again when idle.
    """

    def __init__(
        self,
        listeners: Mapping[str, Routed],
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
        self._server = Server((host, port), Handler, self)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def url(self, name: str) -> str:
        host, port = self.address
        return f"http://{host}:{port}{BUSINESS_PATH_PREFIX}{name}"

    def route(self, path: str) -> Routed | None:
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
        """Every business's health under its name; "busy" or "degraded" when one is; how many
        are known and how many have their state open now."""
        businesses = {name: listener.health() for name, listener in self.listeners.items()}
        for name, reason in self.unavailable.items():
            businesses[name] = {"status": "unavailable", "reason": reason}
        statuses = {document["status"] for document in businesses.values()}
        status = "degraded" if "unavailable" in statuses else "busy" if "busy" in statuses else "ok"
        return {
            "status": status,
            "known": len(businesses),
            # A plain `Listener` is open (it has counts); an unavailable business is not.
            "open": sum(1 for each in businesses.values() if each.get("open", "accepted" in each)),
            "businesses": businesses,
            "rejected": {str(k): v for k, v in sorted(self.stats.rejected.items())},
        }
