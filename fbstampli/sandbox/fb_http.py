"""The sandbox's HTTP face: routing, the documented JSON shapes and error bodies, faults.

Stateless itself: every answer is computed from the `FreshBooksSandbox` the
server carries and its `AccountData`/`AuthState`. Test-only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit

from fbstampli.sandbox.coding import render_category, render_tax
from fbstampli.sandbox.documents import Uploads
from fbstampli.sandbox.fb_data import AccountData, Answer, AuthState, Business, CallbackRecord
from fbstampli.sandbox.rates import Dice
from fbstampli.sandbox.realities import MISSING_SCOPE

log = logging.getLogger(__name__)

JsonObject = dict[str, Any]
DEFAULT_SCOPE = (
    "user:profile:read user:bills:read user:bill_vendors:read user:bill_payments:read "
    "user:expenses:read user:taxes:read"
)
UPLOADS = "/uploads/attachments/"
HOLD_TIMEOUT = 60.0  # a forgotten hold must not wedge a test run forever

_ACCOUNTING = re.compile(
    r"^/accounting/account/(?P<account>[^/]+)/(?P<resource>bills|bill_vendors|bill_payments)/"
    r"(?P=resource)(?:/(?P<object_id>\d+))?$"
)
_CATEGORIES = re.compile(r"^/accounting/account/(?P<account>[^/]+)/expenses/categories$")
_TAXES = re.compile(r"^/accounting/account/(?P<account>[^/]+)/taxes/taxes$")
_CALLBACKS = re.compile(
    r"^/events/account/(?P<account>[^/]+)/events/callbacks(?:/(?P<object_id>\d+))?$"
)
_RESOURCES = {  # resource -> (list key, single key, read scope)
    "bills": ("bills", "bill", "user:bills:read"),
    "bill_vendors": ("bill_vendors", "bill_vendor", "user:bill_vendors:read"),
    "bill_payments": ("bill_payments", "bill_payment", "user:bill_payments:read"),
}
_EVENT = re.compile(r"^[a-z_]+(\.[a-zA-Z]+)?$")
_EVENT_RESOURCES = {"bill", "bill_vendor", "client", "expense", "invoice", "payment"}
_INVALID_TOKEN = "invalid_token: The request token failed to authenticate or validate."  # noqa: S105 - a message
_UNAUTHENTICATED = {
    "error": "unauthenticated",
    "error_description": "This action requires authentication to continue.",
}


@dataclass(slots=True)
class Fault:
    """What the next `times` requests under `prefix` get instead of (or before) an answer.

    `action`: "status" (answer `status` with an error body), "rate_limit" (429 +
    Retry-After), "delay" (wait `seconds`, then answer normally), "drop" (close
    the socket without a response), "lose" (act on the request, then close the
    socket without a response), "truncate" (cut the JSON body in half).
    """

    prefix: str
    action: str
    times: int = 1
    status: int = 500
    retry_after: float = 1.0
    seconds: float = 0.0
    method: str | None = None
    used: int = 0

    def matches(self, method: str, path: str) -> bool:
        wanted = self.method is None or self.method == method
        return wanted and path.startswith(self.prefix) and self.used < self.times


RATE_ACTIONS = ("rate_limit", "status", "delay", "truncate", "drop")


@dataclass(slots=True)
class FaultRate:
    """Each request under `prefix` fails with probability `rate`, taking `actions` in turn.

    One-shot `Fault`s prove one behaviour each; a rate is the weather a client lives in
    (FreshBooks throttles, has bad minutes, proxies cut bodies). The draws are `Dice`'s:
    seeded, and every kind in turn. "delay" waits `delay_seconds`, meant to exceed the
    client's timeout; "status" answers 500 or 503. `injected` counts what was handed out.
    """

    prefix: str
    rate: float
    seed: int = 0
    actions: tuple[str, ...] = RATE_ACTIONS
    delay_seconds: float = 1.0
    retry_after: float = 0.05
    _dice: Dice = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._dice = Dice(self.rate, self.seed, RATE_ACTIONS, self.actions)

    def draw(self, method: str, path: str) -> Fault | None:
        """The fault this request gets, or None; thread-safe."""
        if not path.startswith(self.prefix):
            return None
        action = self._dice.roll(self.actions)
        if action is None:
            return None
        return Fault(
            self.prefix,
            action,
            status=self._dice.choice((500, 503)),
            retry_after=self.retry_after,
            seconds=self.delay_seconds,
            used=1,
        )

    @property
    def injected(self) -> Counter[str]:
        return self._dice.injected

    @property
    def total(self) -> int:
        return self._dice.total


@dataclass(slots=True)
class Hold:
    """Freezes matching requests mid-flight until released, so a test can kill the client there."""

    prefix: str
    method: str | None = None
    times: int = 1
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    used: int = 0

    def matches(self, method: str, path: str) -> bool:
        wanted = self.method is None or self.method == method
        return wanted and path.startswith(self.prefix) and self.used < self.times

    def release(self) -> None:
        self.released.set()


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    kind: str  # e.g. "bills.list", "bills.get", "token", "callbacks.create"
    status: int  # 0: dropped without a response


def classic_error(status: int, errno: int, message: str, obj: str, value: str = "") -> Answer:
    error = {"errno": errno, "field": "id", "message": message, "object": obj, "value": value}
    return Answer(status, {"response": {"errors": [error]}})


def field_error(errno: int, message: str, obj: str, field_name: str, value: str) -> Answer:
    """HTTP 400 in the classic accounting shape, naming the parameter refused."""
    error = {"errno": errno, "field": field_name, "message": message, "object": obj, "value": value}
    return Answer(400, {"response": {"errors": [error]}})


def request_kind(method: str, path: str) -> str:
    match = _ACCOUNTING.match(path)
    if match:
        return f"{match['resource']}.{'get' if match['object_id'] else 'list'}"
    if _CATEGORIES.match(path):
        return "categories.list"
    if _TAXES.match(path):
        return "taxes.list"
    match = _CALLBACKS.match(path)
    if match:
        verbs = {"POST": "create", "GET": "get" if match["object_id"] else "list"}
        return "callbacks." + verbs.get(method, method.lower())
    named = {
        "/auth/oauth/token": "token",
        "/auth/oauth/revoke": "revoke",
        "/oauth/authorize": "authorize",
        "/auth/api/v1/users/me": "me",
    }
    return named.get(path.rstrip("/") or path, "other")


class SandboxState(Protocol):
    """What the HTTP face reads and steers of `FreshBooksSandbox`.

    A Protocol, so this module need not import the one that builds the server
    from it: the two would import each other.
    """

    now: Callable[[], datetime]
    businesses: list[Business]
    accounts: dict[str, AccountData]
    auth: AuthState
    latency: float
    honour_sort: bool
    callbacks: dict[str, dict[int, CallbackRecord]]
    uploads: Uploads

    @property
    def realities(self) -> frozenset[str]: ...

    def arrive(self, method: str, path: str) -> tuple[Fault | None, Hold | None]: ...

    def record(self, record: RequestRecord) -> None: ...

    def issue_code(self, redirect_uri: str, scope: str | None = None) -> str: ...

    def new_callback(
        self, account_id: str, event: str, uri: str, verifier: str
    ) -> CallbackRecord: ...

    def send_verification(self, record: CallbackRecord) -> object: ...


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as FreshBooks; every answer has Content-Length
    # Headers and body go out in two writes; with Nagle on, the second waits for the
    # client's delayed ACK (about 40 ms a request), which real servers do not add.
    disable_nagle_algorithm = True
    server_version = "FreshBooksSandbox/1"

    @property
    def sandbox(self) -> SandboxState:
        sandbox: SandboxState = self.server.sandbox  # type: ignore[attr-defined]
        return sandbox

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sandbox: " + format, *args)  # noqa: G003 - stdlib hands us a %-format

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # ---- plumbing -----------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        body = self._read_body()
        fault, hold = self.sandbox.arrive(method, path)
        if self.sandbox.latency:
            time.sleep(self.sandbox.latency)
        if hold is not None:
            hold.arrived.set()
            hold.released.wait(HOLD_TIMEOUT)
        answer = self._answer(method, path, query, body, fault)
        # Logged before the client can see the answer, so a test never races its own request.
        status = 0 if answer is None else answer.status
        self.sandbox.record(RequestRecord(method, path, query, request_kind(method, path), status))
        if answer is None:
            self.close_connection = True  # dropped: the socket closes without a response
            return
        self._send(answer, truncate=fault is not None and fault.action == "truncate")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes, fault: Fault | None
    ) -> Answer | None:
        if fault is not None and fault.action == "drop":
            return None
        if fault is not None and fault.action == "lose":
            self._route(method, path, query, body)  # FreshBooks acts; the answer never arrives
            return None
        if fault is not None and fault.action == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.action == "rate_limit":
            headers = {"Retry-After": f"{fault.retry_after:g}"}
            return Answer(429, {"errno": 429, "message": "Too many requests."}, headers)
        if fault is not None and fault.action == "status":
            return Answer(fault.status, {"errno": fault.status, "message": "Injected failure."})
        return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        try:
            return Routes(self.sandbox, method, path, query, body, self.headers).dispatch()
        except Answer as raised:
            return raised

    def _send(self, answer: Answer, *, truncate: bool = False) -> None:
        payload = b"" if answer.body is None else json.dumps(answer.body).encode("utf-8")
        payload = payload if answer.raw is None else answer.raw
        if truncate:
            payload = payload[: len(payload) // 2]
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json")
        if answer.headers.get("Transfer-Encoding") == "chunked":  # no length stated up front
            self.end_headers()
            for start in range(0, len(payload), 65536):
                chunk = payload[start : start + 65536]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class Routes:
    """One request's routing and answers; raises `Answer` for early exits."""

    def __init__(
        self,
        sandbox: SandboxState,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: bytes,
        headers: Any,
    ) -> None:
        self.sandbox = sandbox
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.headers = headers

    def dispatch(self) -> Answer:
        path = self.path.rstrip("/") or "/"
        from fbstampli.sandbox import fb_admin

        if fb_admin.is_admin(path):
            return fb_admin.admin_answer(self.sandbox, self.method, path, self.query, self.body)
        if path == "/auth/oauth/token" and self.method == "POST":
            return self.token()
        if path == "/auth/oauth/revoke" and self.method == "POST":
            return self.revoke()
        if path == "/oauth/authorize" and self.method == "GET":
            return self.authorize()
        if path == "/auth/api/v1/users/me" and self.method == "GET":
            self.require_scope("user:profile:read", events=False)
            return Answer(200, {"response": self.identity()})
        match = _ACCOUNTING.match(path)
        if match and self.method == "GET":
            return self.accounting(match["account"], match["resource"], match["object_id"])
        match = _CATEGORIES.match(path)
        if match and self.method == "GET":
            return self.categories(match["account"])
        match = _TAXES.match(path)
        if match and self.method == "GET":
            return self.taxes(match["account"])
        match = _CALLBACKS.match(path)
        if match:
            return self.callbacks(match["account"], match["object_id"])
        if path.startswith(UPLOADS) and self.method == "GET":
            return self.upload(path.removeprefix(UPLOADS))
        raise Answer(404, {"errno": 404, "message": f"No route for {self.method} {path}."})

    def upload(self, jwt: str) -> Answer:
        """The file's bytes, as the SDK reads them; an error is JSON with status >= 400."""
        self.require_scope("user:bills:read", events=False)  # a valid token, at least
        uploads = self.sandbox.uploads
        if uploads.refuse:
            raise Answer(403, {"error": "forbidden", "message": "Insufficient scopes."})
        found = uploads.get(jwt)
        if found is None:
            raise Answer(404, {"error": "not_found", "message": "No such attachment."})
        headers = {"Content-Type": found.media_type}
        if not uploads.state_length:
            headers["Transfer-Encoding"] = "chunked"
        return Answer(200, headers=headers, raw=found.content)

    # ---- request helpers ----------------------------------------------------------------------

    def form_or_json(self) -> dict[str, Any]:
        content_type = self.headers.get("Content-Type", "")
        try:
            if "json" in content_type:
                parsed = json.loads(self.body or b"{}")
                return parsed if isinstance(parsed, dict) else {}
            return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8")).items()}
        except (ValueError, UnicodeDecodeError):
            raise Answer(
                400, {"error": "invalid_request", "error_description": "Bad body."}
            ) from None

    def require_scope(self, scope: str, *, events: bool) -> None:
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        granted = self.sandbox.auth.scope_of(token) if token else None
        if granted is None:
            body: object = _UNAUTHENTICATED
            if events:
                body = {"errno": 401, "message": _INVALID_TOKEN}
            raise Answer(401, body)
        if scope not in granted.split():
            message = f"Insufficient scopes. Granted: {granted}. Needed: {scope}."
            raise Answer(403, {"errno": 1003, "message": message})

    def int_param(self, name: str, default: int, errno: int) -> int:
        raw = self.query.get(name, [str(default)])[-1]
        if not raw.isdigit():
            raise classic_error(400, errno, f"Invalid value for {name}.", name, raw)
        return int(raw)

    def account(self, account_id: str) -> AccountData:
        account = self.sandbox.accounts.get(account_id)
        if account is None:
            raise classic_error(
                404, 1012, "The requested resource was not found.", "account", account_id
            )
        return account

    # ---- OAuth --------------------------------------------------------------------------------

    def token(self) -> Answer:
        form = self.form_or_json()
        auth = self.sandbox.auth
        if (
            form.get("client_id") != auth.client_id
            or form.get("client_secret") != auth.client_secret
        ):
            raise Answer(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed."},
            )
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = auth.exchange_code(
                str(form.get("code", "")), str(form.get("redirect_uri", ""))
            )
        elif grant == "refresh_token":
            issued = auth.refresh(str(form.get("refresh_token", "")))
        else:
            raise Answer(400, {"error": "unsupported_grant_type", "error_description": str(grant)})
        if issued is None:
            description = (
                "The provided authorization grant is invalid, expired, revoked or already used."
            )
            raise Answer(400, {"error": "invalid_grant", "error_description": description})
        return Answer(200, issued)

    def revoke(self) -> Answer:
        form = self.form_or_json()
        auth = self.sandbox.auth
        if (
            form.get("client_id") != auth.client_id
            or form.get("client_secret") != auth.client_secret
        ):
            raise Answer(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed."},
            )
        auth.revoke(str(form.get("token", "")))
        return Answer(200, {})

    def authorize(self) -> Answer:
        """Consent without a browser: redirect straight back with a code and the state."""
        params = {k: v[-1] for k, v in self.query.items()}
        if params.get("client_id") != self.sandbox.auth.client_id or "redirect_uri" not in params:
            raise Answer(400, {"error": "invalid_request", "error_description": "Unknown client."})
        scope = params.get("scope") or DEFAULT_SCOPE
        if "scope-missing" in self.sandbox.realities and MISSING_SCOPE in scope.split():
            # What FreshBooks does when the app is not registered for a requested scope:
            # the whole consent fails, with OAuth's generic error on the redirect.
            refused = {
                "error": "invalid_scope",
                "error_description": "The requested scope is invalid, unknown, or malformed.",
                **({"state": params["state"]} if "state" in params else {}),
            }
            location = f"{params['redirect_uri']}?{urlencode(refused)}"
            return Answer(302, None, {"Location": location})
        code = self.sandbox.issue_code(params["redirect_uri"], scope)
        back = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        return Answer(302, None, {"Location": f"{params['redirect_uri']}?{urlencode(back)}"})

    def identity(self) -> JsonObject:
        memberships = [
            {
                "id": 140000 + index,
                "role": business.role,
                "unacknowledged_change": False,
                "business": {
                    "id": business.business_id,
                    "business_uuid": f"00000000-0000-4000-8000-{business.business_id:012d}",
                    "name": business.name,
                    "account_id": business.account_id,
                    "date_format": "mm/dd/yyyy",
                },
            }
            for index, business in enumerate(self.sandbox.businesses)
        ]
        return {
            "id": 1,
            "identity_id": 1,
            "first_name": "Sandra",
            "last_name": "Box",
            "email": "owner@sandbox.example",
            "language": "en",
            "business_memberships": memberships,
        }

    # ---- accounting ---------------------------------------------------------------------------

    def accounting(self, account_id: str, resource: str, object_id: str | None) -> Answer:
        list_key, single_key, scope = _RESOURCES[resource]
        self.require_scope(scope, events=False)
        account = self.account(account_id)
        table = {
            "bills": account.bills,
            "bill_vendors": account.vendors,
            "bill_payments": account.payments,
        }[resource]
        self.refuse_unsupported(resource, single_key)
        render = self.renderer(account, resource)
        with account.lock:
            if object_id is not None:
                row = table.get(int(object_id))
                if row is None:
                    raise classic_error(
                        404, 1012, f"{single_key} not found.", single_key, object_id
                    )
                return Answer(200, {"response": {"result": {single_key: render(row)}}})
            rows = self.sorted(resource, account.select(table, **self.filters(resource)))
            page, per_page, pages, chunk = self.paginate(rows)
            listed = [self.as_listed(resource, render(row)) for row in chunk]
            result = {list_key: listed, "page": page, "pages": pages,
                      "per_page": per_page, "total": len(rows)}  # fmt: skip
        return Answer(200, {"response": {"result": result}})

    def categories(self, account_id: str) -> Answer:
        """The expense categories, paged like every list; deleted ones only when asked for."""
        self.require_scope("user:expenses:read", events=False)
        account = self.account(account_id)
        with account.lock:
            rows = account.select(account.categories, **self.filters("categories"))
            page, per_page, pages, chunk = self.paginate(rows)
            listed = [render_category(row) for row in chunk]
            result = {"categories": listed, "page": page, "pages": pages,
                      "per_page": per_page, "total": len(rows)}  # fmt: skip
        return Answer(200, {"response": {"result": result}})

    def taxes(self, account_id: str) -> Answer:
        """The taxes, paged like every list."""
        self.require_scope("user:taxes:read", events=False)
        account = self.account(account_id)
        with account.lock:
            rows = account.select(account.taxes, **self.filters("taxes"))
            page, per_page, pages, chunk = self.paginate(rows)
            listed = [render_tax(row) for row in chunk]
            result = {"taxes": listed, "page": page, "pages": pages,
                      "per_page": per_page, "total": len(rows)}  # fmt: skip
        return Answer(200, {"response": {"result": result}})

    def refuse_unsupported(self, resource: str, single_key: str) -> None:
        """The 400s of the `sort-rejected` and `vendor-ids-rejected` realities."""
        realities = self.sandbox.realities
        sort = self.query.get("sort")
        if sort and "sort-rejected" in realities and resource != "bill_payments":
            raise field_error(1004, "Invalid value for sort.", single_key, "sort", sort[-1])
        ids = self.query.get("search[ids][]")
        if ids and "vendor-ids-rejected" in realities and resource == "bill_vendors":
            raise field_error(1023, "Invalid search filter: ids.", single_key, "ids", ids[0])

    def as_listed(self, resource: str, body: JsonObject) -> JsonObject:
        """A row of a list response: without lines and payments under `lines-omitted`."""
        if resource == "bills" and "lines-omitted" in self.sandbox.realities:
            return {k: v for k, v in body.items() if k not in ("lines", "bill_payments")}
        return body

    def renderer(self, account: AccountData, resource: str) -> Callable[[JsonObject], JsonObject]:
        if resource == "bills":
            include_vendor = "vendor" in self.query.get("include[]", [])
            return lambda bill: account.render_bill(bill, include_vendor)
        if resource == "bill_vendors":
            return account.render_vendor
        return account.render_payment

    def filters(self, resource: str) -> dict[str, Any]:
        chosen: dict[str, Any] = {}
        if "search[vis_state]" in self.query:
            chosen["vis_state"] = self.int_param("search[vis_state]", 0, 1004)
        raw_ids = self.query.get("search[ids][]")
        if raw_ids is not None:
            if not all(i.isdigit() for i in raw_ids):
                raise classic_error(
                    400, 1004, "Invalid value for ids.", "search", ",".join(raw_ids)
                )
            if not (resource == "bill_vendors" and "vendor-ids-ignored" in self.sandbox.realities):
                chosen["ids"] = {int(i) for i in raw_ids}
        equals = {}
        for name in ("vendorid", "billid"):
            if name == "billid" and "billid-ignored" in self.sandbox.realities:
                continue
            if f"search[{name}]" in self.query:
                equals[name] = self.int_param(f"search[{name}]", 0, 1004)
        if equals:
            chosen["equals"] = equals
        return chosen

    def sorted(self, resource: str, rows: list[JsonObject]) -> list[JsonObject]:
        """`sort=updated_at_desc|_asc` on bills and vendors (ties by id); other keys ignored."""
        key = self.query.get("sort", [""])[-1]
        if resource == "bill_payments":
            return rows
        id_key = "id" if resource == "bills" else "vendorid"
        if "sort-ignored" in self.sandbox.realities:
            # Every listing in FreshBooks' own default order, assumed newest created first.
            return sorted(rows, key=lambda row: (row["created_at"], row[id_key]), reverse=True)
        if not self.sandbox.honour_sort:
            return rows
        if key not in ("updated_at_desc", "updated_at_asc"):
            return rows
        return sorted(
            rows, key=lambda row: (row["updated_at"], row[id_key]), reverse=key.endswith("_desc")
        )

    def paginate(self, rows: list[JsonObject]) -> tuple[int, int, int, list[JsonObject]]:
        page = max(1, self.int_param("page", 1, 1014))  # page=0 is page 1
        per_page = self.int_param("per_page", 15, 1013)
        if per_page < 1:
            raise classic_error(400, 1013, "Invalid value for per_page.", "per_page", "0")
        per_page = min(per_page, 100)  # silently capped, as FreshBooks does
        pages = math.ceil(len(rows) / per_page)
        if pages == 0 and "empty-pages-zero" not in self.sandbox.realities:
            pages = 1  # what the client was written for; a live capture shows 0
        start = (page - 1) * per_page
        return page, per_page, pages, rows[start : start + per_page]

    # ---- events / callbacks -------------------------------------------------------------------

    def callbacks(self, account_id: str, object_id: str | None) -> Answer:
        self.require_scope("user:profile:read", events=True)
        if account_id not in self.sandbox.callbacks:
            raise Answer(404, {"errno": 404, "message": "Account not found."})
        records = self.sandbox.callbacks[account_id]
        if object_id is None:
            if self.method == "POST":
                return self.create_callback(account_id)
            if self.method == "GET":
                rendered = [r.render() for r in records.values()]
                result = {
                    "callbacks": rendered,
                    "page": 1,
                    "pages": 1,
                    "per_page": 100,
                    "total": len(rendered),
                }
                return Answer(200, {"response": {"result": result}})
            raise Answer(405, {"errno": 405, "message": "Method not allowed."})
        record = records.get(int(object_id))
        if record is None:
            raise Answer(404, {"errno": 404, "message": f"Callback {object_id} not found."})
        if self.method == "DELETE":
            del records[record.callback_id]
            return Answer(204)
        if self.method == "PUT":
            self.update_callback(record)
        return Answer(200, {"response": {"result": {"callback": record.render()}}})

    def create_callback(self, account_id: str) -> Answer:
        requested = self.form_or_json().get("callback") or {}
        event, uri = str(requested.get("event", "")), str(requested.get("uri", ""))
        problems = []
        if not _EVENT.match(event) or event.partition(".")[0] not in _EVENT_RESOURCES:
            problems.append("event: Value error, Unrecognized event.")
        if urlsplit(uri).scheme not in ("http", "https") or not urlsplit(uri).netloc:
            problems.append("uri: Input should be a valid URL")
        if problems:
            raise Answer(
                422, {"errno": 422, "message": "Invalid data in this request.", "details": problems}
            )
        verifier = secrets.token_hex(12)
        record = self.sandbox.new_callback(account_id, event, uri, verifier)
        self.sandbox.send_verification(record)
        return Answer(200, {"response": {"result": {"callback": record.render()}}})

    def update_callback(self, record: CallbackRecord) -> None:
        requested = self.form_or_json().get("callback") or {}
        if requested.get("resend"):
            self.sandbox.send_verification(record)
        elif "verifier" in requested:
            if requested["verifier"] != record.verifier:
                raise Answer(422, {"errno": 422, "message": "Invalid verifier."})
            record.verified = True
            record.updated_at = self.sandbox.now()
