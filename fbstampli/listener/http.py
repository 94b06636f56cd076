"""HTTP only: the server, its connection limits, request framing and status codes.

What a request means is decided behind the `Front` protocol (`Listener` for one
business, `InstallationListener` for several); this module never reads the store.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from fbstampli.errors import FbstampliError
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER
from fbstampli.listener.gate import Gate, Limits

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/freshbooks"
HEALTH_PATH = "/healthz"
REQUEST_TIMEOUT = 10.0  # seconds a connection may take to send its request; FreshBooks waits 10 s
# Open connections served at once; how they are shared out is `gate`'s business.
MAX_CONNECTIONS = Limits().total
MAX_HEADER_BYTES = 16 * 1024  # the request line and every header line together
MAX_HEADER_LINES = 64
# Only a connection whose last request was a correctly signed event (FreshBooks) is kept
# open for another, each with its own deadline, and never for longer than this in all.
KEEP_ALIVE_SECONDS = 60.0


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
    signed: bool = False  # the request carried a valid signature: its connection may be kept


class Receiver(Protocol):
    """Who decides on one POSTed body."""

    def receive(self, body: bytes, signature: str | None) -> Answer: ...


class Front(Protocol):
    """What the server asks of the listener it serves: routing, limits, counts and health."""

    max_body_bytes: int
    request_timeout: float

    def route(self, path: str) -> Receiver | None: ...

    def unrouted(self, path: str) -> Answer: ...

    def count_rejection(self, status: int) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def in_flight(self) -> contextlib.AbstractContextManager[None]: ...


class Serving:
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


_LENGTH = re.compile(r"[0-9]{1,12}")


class HeaderBudget(io.BufferedIOBase):
    """The request's reader, allowing the request line and headers `max_bytes` and `max_lines`.

    http.server allows 100 header lines of 64 KiB each: 64 connections held 6 MB each.
    Past the budget `readline` raises what `parse_request` answers 431; the body
    (`read`) is not counted, `max_body_bytes` bounds it.
    """

    def __init__(self, raw: Any, max_bytes: int, max_lines: int) -> None:
        super().__init__()
        self._raw = raw
        self._max = (max_bytes, max_lines + 2)  # + the request line and the blank line
        self._bytes_left, self._lines_left = self._max

    def renew(self) -> None:
        """A new request on the same connection: a new budget."""
        self._bytes_left, self._lines_left = self._max

    def readline(self, limit: int | None = -1, /) -> bytes:
        if self._lines_left <= 0:
            raise http.client.HTTPException("too many header lines")
        allowed = self._bytes_left + 1
        if limit is not None and limit >= 0:
            allowed = min(limit, allowed)
        line: bytes = self._raw.readline(allowed)
        if len(line) > self._bytes_left:
            raise http.client.LineTooLong("request line and headers")
        self._bytes_left -= len(line)
        self._lines_left -= 1
        return line

    def read(self, size: int | None = -1, /) -> bytes:
        data: bytes = self._raw.read(size)
        return data

    def close(self) -> None:
        self._raw.close()
        super().close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 resets connections in a burst of deliveries

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        listener: Front,
    ) -> None:
        self.listener = listener
        self.gate = Gate(
            self._start_thread,
            Limits(),  # a queued connection costs a socket, no thread: it may wait 10 s
            on_refuse=lambda: listener.count_rejection(503),
        )
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, but only so many, shared out by `gate`."""
        self.gate.arrive(request, client_address)

    def _start_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.gate.leave(request)
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.gate.leave(request)

    def server_close(self) -> None:
        super().server_close()
        self.gate.close_waiting()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a broken client connection is routine.
        # socketserver calls this from inside its except block, so exc_info is the error.
        log.debug("request from %s failed", client_address[0], exc_info=True)  # noqa: LOG014


class Handler(BaseHTTPRequestHandler):
    """HTTP only: framing, limits and status codes; `Listener.receive` decides."""

    server: Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes; do not stall the second
    server_version = "fbstampli-webhook"
    sys_version = ""

    def setup(self) -> None:
        """Each request must arrive whole within `request_timeout` of the connection (or of
        the previous answer) and within the header budget.

        The socket timeout bounds each read only: a client sending a header line
        every few seconds would hold its thread for ever. The watchdog cuts the
        connection when the request is not in by then; reading it stops the watch.
        Every answer closes the connection but one to a signed event (FreshBooks),
        so nobody else keeps a slot between requests.
        """
        super().setup()
        self.connection.settimeout(self.server.listener.request_timeout)  # slow clients: cut off
        self._budget = HeaderBudget(self.rfile, MAX_HEADER_BYTES, MAX_HEADER_LINES)
        self.rfile = self._budget
        self._opened = time.monotonic()
        self._keep = False
        self._watchdog: threading.Timer | None = None
        self._arm()

    def _arm(self) -> None:
        self._watchdog = threading.Timer(self.server.listener.request_timeout, self._cut_off)
        self._watchdog.daemon = True
        self._watchdog.start()

    def handle_one_request(self) -> None:
        self._keep = False
        try:
            super().handle_one_request()
        except http.client.HTTPException:  # the request line alone is over the header budget
            self.requestline = self.request_version = self.command = ""
            self.send_error(431, "request header fields too large")
        finally:
            self._request_read()
        lifetime_left = time.monotonic() - self._opened < KEEP_ALIVE_SECONDS
        if self._keep and lifetime_left and not self.close_connection:
            self._budget.renew()
            self.server.gate.request_started(self.request)
            self._arm()
        else:
            self.close_connection = True

    def finish(self) -> None:
        self._request_read()  # no watchdog outlives its connection
        super().finish()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a bad request line, headers over the budget): counted."""
        self.server.listener.count_rejection(code)
        super().send_error(code, message, explain)

    def _request_read(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
            self.server.gate.request_read(self.request)

    def _cut_off(self) -> None:
        log.info("a client from %s was too slow to send its request", self.client_address[0])
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        # Never the headers or the body: the signature and the verifier must not reach a log.
        log.debug("%s %s", self.address_string(), format % args)

    def _path(self) -> str:
        return urlsplit(self.path).path

    def _send(self, status: int, document: dict[str, Any], *, keep: bool = False) -> None:
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", "GET" if self._path() == HEALTH_PATH else "POST")
        self._keep = keep
        if not keep:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        # The body (if any) was not read, so the connection cannot carry another request.
        self.server.listener.count_rejection(status)
        self._send(status, {"error": message})

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
            keep = answer.status == 200 and answer.signed
            self._send(answer.status, {"result": answer.message}, keep=keep)
