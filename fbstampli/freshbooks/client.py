"""The FreshBooks API client: paging, retries inside one call, token refresh, error mapping.

Every requests exception and every FreshBooks error body stops here and leaves
as an `fbstampli.errors` error of one line built from hosts, paths and ids,
never from headers or bodies carrying secrets. Retries never outlive a call;
retries across runs belong to the sync engine.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import AuthRequiredError, RemoteError, RemoteUnavailableError
from fbstampli.freshbooks.parse import (
    BusinessMembership,
    Callback,
    error_message,
    error_number,
    parse_bill,
    parse_bill_payment,
    parse_callback,
    parse_memberships,
    parse_vendor,
)
from fbstampli.models import Bill, BillPayment, Vendor, VisState
from fbstampli.models.behaviour import (
    EMPTY_PAGES,
    LIST_LINES,
    NEW_YORK,
    SORT_BILLS,
    SORT_VENDORS,
    VENDOR_IDS,
    VENDOR_TIMES,
    Learnt,
    ids_monotone,
)

log = logging.getLogger(__name__)

PER_PAGE = 100  # FreshBooks silently caps per_page at 100
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After is cut to this, the run stays bounded
ERRNO_ACCESS_DENIED = 1003
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
BACKOFF_JITTER = 0.5

Params = Mapping[str, str | int | list[int]]
NEWEST_FIRST: Params = {"sort": "updated_at_desc"}  # unconfirmed: checked as it is used
OLDEST_FIRST: Params = {"sort": "updated_at_asc"}
PROBE_PER_PAGE = 3  # rows a sort probe asks for: enough to see an order, cheap to send
SORT_FACTS = {"bills": SORT_BILLS, "bill_vendors": SORT_VENDORS}
# The read scope each resource needs, named in the message when FreshBooks answers 403.
READ_SCOPES = {
    "bills": "user:bills:read",
    "bill_vendors": "user:bill_vendors:read",
    "bill_payments": "user:bill_payments:read",
}
_SCOPE = re.compile(r"user:[a-z_]+:(?:read|write)")
Dated = TypeVar("Dated", Vendor, Bill)
PageCallback = Callable[["PageProgress"], None]
ID_KEYS = {"bill_vendors": "vendorid", "callbacks": "callbackid"}
# Times one listing may go back, before a list that keeps moving is left to the next run.
MAX_REREADS = 50


@dataclass(frozen=True, slots=True)
class PageProgress:
    kind: str  # "bills", "bill_vendors", "bill_payments", "callbacks"
    page: int
    pages: int | None
    total: int | None


class AccessTokens(Protocol):
    """What the client needs from `oauth.TokenManager`."""

    def access_token(self) -> str: ...

    def refresh_after_unauthorized(self, rejected_access_token: str) -> str: ...


class NotFoundError(RemoteError):
    """HTTP 404: the object (or the account) does not exist for this login."""


class BadRequestError(RemoteError):
    """HTTP 400: FreshBooks refused a parameter (an unsupported sort or filter, say)."""


class _TransientError(Exception):
    """Worth another try within this call (429, 5xx, 409, network, unreadable body)."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class _UnauthorizedError(Exception):
    """HTTP 401: the access token is stale; the caller refreshes once."""


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _backoff(attempt_number: int) -> float:
    """Exponential from 0.5 s, capped at 30 s, plus jitter so parallel clients spread out."""
    base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (attempt_number - 1))
    return base + random.uniform(0, BACKOFF_JITTER)  # noqa: S311 - jitter, not a secret


def _count(value: object) -> int | None:
    """`pages` or `total` when FreshBooks sent a usable number; a bool is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _row_id(row: object, key: str) -> int | str | None:
    """A listed row's FreshBooks id (vendors call theirs `vendorid`), or None if it has none."""
    if not isinstance(row, Mapping):
        return None
    value = row.get(ID_KEYS.get(key, "id"), row.get("id"))
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def _chunks(ids: Iterable[int], size: int = PER_PAGE) -> Iterator[list[int]]:
    unique = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def _result(body: object, what: str) -> Mapping[str, Any]:
    response = body.get("response") if isinstance(body, Mapping) else None
    result = response.get("result") if isinstance(response, Mapping) else None
    if not isinstance(result, Mapping):
        raise RemoteError(f"FreshBooks answered {what} without a `response.result` envelope")
    return result


class _FilterIgnoredError(Exception):
    """A listing by ids named an object not asked for: the filter was not applied."""


def _page_order(page: list[Vendor] | list[Bill]) -> str | None:
    """'ignored' when a newest-first page is out of order, 'honoured' when it is newest first
    and yet not in creation (id) order, None when it is both or too short to say."""
    stamps = [obj.updated_at for obj in page]
    if any(a < b for a, b in pairwise(stamps)):  # type: ignore[operator]
        return "ignored"
    if len(page) < 2 or ids_monotone(obj.fb_id for obj in page):
        return None
    return "honoured"


def _newest_first_pages(objects: list[Any]) -> Iterator[list[Any]]:
    """What a honoured sort would have given: pages of 100, newest `updated_at` first."""
    undated = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(objects, key=lambda o: (o.updated_at or undated, o.fb_id), reverse=True)
    for start in range(0, len(ordered), PER_PAGE):
        yield ordered[start : start + PER_PAGE]


class FreshBooksClient:
    """FreshBooks for one account; satisfies `sync.ports.BillSource` structurally."""

    def __init__(
        self,
        settings: FreshBooksSettings,
        token_manager: AccessTokens,
        account_id: str,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_page: PageCallback | None = None,
        learnt: Learnt | None = None,
    ) -> None:
        self._settings = settings
        self.learnt = learnt or Learnt()
        self._tokens = token_manager
        self._account_id = account_id
        self._session = session or requests.Session()
        # One request at a time, even when a listing is read ahead in a worker thread while
        # the consumer fetches a bill's lines: the session is not shared in flight, and
        # FreshBooks sees no more than one connection's worth of load from a run.
        self._sending = threading.Lock()
        self._sleep = sleep
        self._on_page = on_page
        self._base = settings.api_url.rstrip("/")
        self._host = urlsplit(self._base).netloc or self._base

    def close(self) -> None:
        self._session.close()

    # ---- HTTP core -------------------------------------------------------------------------

    def _send_once(
        self,
        method: str,
        url: str,
        params: Params | None,
        json_body: object,
        access: str,
        what: str,
    ) -> object:
        try:
            with self._sending:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {access}", "Accept": "application/json"},
                    timeout=self._settings.timeout_seconds,
                    allow_redirects=False,  # the bearer token goes to the configured host only
                )
        except requests.Timeout:
            raise _TransientError("timed out") from None
        except requests.RequestException as error:
            raise _TransientError(f"connection failed: {type(error).__name__}") from None
        return self._interpret(response, what)

    def _interpret(self, response: requests.Response, what: str) -> object:
        status = response.status_code
        if status == 204:
            return None
        try:
            body: object = response.json()
        except ValueError:
            body = None
        message = error_message(body) or f"HTTP {status}"
        if 300 <= status < 400:
            raise RemoteError(
                f"FreshBooks answered {what} with a redirect (HTTP {status}); not followed: "
                "a request carrying the token goes nowhere else (check freshbooks.api_url)"
            )
        if status == 401:
            raise _UnauthorizedError(message)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise _TransientError("rate limited (HTTP 429)", status=429, retry_after=retry_after)
        if status >= 500 or status == 409:
            raise _TransientError(f"HTTP {status}", status=status)
        if status == 403:
            raise AuthRequiredError(self._scope_message(what, message, response.url))
        if status == 404:
            raise NotFoundError(f"FreshBooks found no {what}: {message} (HTTP 404)")
        if status == 400:
            raise BadRequestError(f"FreshBooks refused {what}: {message} (HTTP 400)")
        if status >= 400:
            raise RemoteError(f"FreshBooks refused {what}: {message} (HTTP {status})")
        if body is None:
            raise _TransientError("unreadable JSON response", status=status)
        # FreshBooks may report an error with HTTP 200 (docs/FRESHBOOKS-BEHAVIOUR.md §4.3, §5.12).
        if isinstance(body, Mapping) and "result" not in (body.get("response") or {}):
            embedded = error_message(body)
            if embedded is not None:
                if error_number(body) == ERRNO_ACCESS_DENIED:
                    raise AuthRequiredError(f"FreshBooks refused {what}: {embedded}")
                raise RemoteError(f"FreshBooks refused {what}: {embedded}")
        return body

    def _scope_message(self, what: str, message: str, url: str) -> str:
        """One line naming the scope to enable: FreshBooks' own "Needed:" list, else the
        read scope of the resource asked for."""
        needed = message.partition("Needed")[2] if "Needed" in message else ""
        scopes = _SCOPE.findall(needed)
        if not scopes:
            path = urlsplit(url).path
            scopes = [scope for resource, scope in READ_SCOPES.items() if f"/{resource}/" in path]
        if not scopes:
            return (
                f"FreshBooks refused {what}: the login lacks a permission or scope ({message}); "
                f"run `fbstampli auth login` granting: {self._settings.scopes}"
            )
        named = ", ".join(dict.fromkeys(scopes))
        return (
            f"FreshBooks refused {what}: the login lacks the scope {named}; enable it on your "
            "FreshBooks app (Developer Portal, the app's Scopes), then run `fbstampli auth login`"
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _TransientError) and error.retry_after is not None:
            return error.retry_after
        return _backoff(state.attempt_number)

    def _with_retries(
        self, attempt: Callable[[], object], *, idempotent: bool, what: str
    ) -> object:
        def worth_retrying(error: BaseException) -> bool:
            # A POST that may have landed is only replayed when FreshBooks said "not now".
            return isinstance(error, _TransientError) and (idempotent or error.status == 429)

        retrying = Retrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _TransientError as error:
            raise RemoteUnavailableError(
                f"FreshBooks at {self._host} did not answer {what} ({error.reason}); "
                "try again later"
            ) from None

    def _call(
        self,
        method: str,
        path: str,
        what: str,
        *,
        params: Params | None = None,
        json_body: object = None,
        idempotent: bool = True,
    ) -> object:
        url = self._base + path
        access = self._tokens.access_token()

        def attempt() -> object:
            return self._send_once(method, url, params, json_body, access, what)

        try:
            return self._with_retries(attempt, idempotent=idempotent, what=what)
        except _UnauthorizedError:
            log.info("FreshBooks answered 401 to %s; refreshing the access token once", what)
        access = self._tokens.refresh_after_unauthorized(access)
        try:
            return self._with_retries(attempt, idempotent=idempotent, what=what)
        except _UnauthorizedError as error:
            raise AuthRequiredError(
                f"FreshBooks rejected the access token for {what} even after a refresh "
                f"({error}); run `fbstampli auth login`"
            ) from None

    # ---- paging ----------------------------------------------------------------------------

    def _account_path(self, resource: str) -> str:
        return f"/accounting/account/{quote(self._account_id, safe='')}/{resource}/{resource}"

    def _pages(self, path: str, key: str, what: str, params: Params) -> Iterator[list[Any]]:
        """Pages of raw rows, each row once, none lost to a list that moved while read.

        FreshBooks pages by offset. When objects join or leave the list while it
        is read, its `total` changes and later rows move: a deletion slides rows
        back onto the page already read. So a page showing a new total is not
        given; the page before it is read again (further back for a bigger
        change), keeping only rows not yet given. Going back a page rather than
        to page 1 keeps a busy account's listing finite. (A newest-first reader
        that goes back to page 1 may meet a newly created row out of order and
        then lists everything: correct, only dearer.) A list that keeps moving
        is a temporary failure: nothing is written from an unfinished listing.
        A deletion and a creation between two pages leave the total unchanged
        and cannot be seen here; the periodic full sweep is the net for that.
        """
        given: set[int | str] = set()
        reference: int | None = None  # the total the pages read so far agree on
        rereads = 0
        page = 1
        while True:
            query = {**params, "page": page, "per_page": PER_PAGE}
            body = self._call("GET", path, f"{what} (page {page})", params=query)
            result = _result(body, what)
            rows = result.get(key)
            if not isinstance(rows, list):
                raise RemoteError(f"FreshBooks answered {what} without a `{key}` list")
            pages = _count(result.get("pages"))
            total = _count(result.get("total"))
            if self._on_page is not None:
                self._on_page(PageProgress(key, page, pages, total))
            if page > 1 and reference is not None and total is not None and total != reference:
                rereads += 1
                if rereads > MAX_REREADS:
                    raise RemoteUnavailableError(
                        f"{what} kept changing in FreshBooks while it was read; "
                        "the next run reads it again"
                    )
                back = 1 + abs(total - reference) // PER_PAGE
                log.info("%s changed while it was read; reading %d page(s) again", what, back)
                reference, page = total, max(1, page - back)
                continue
            reference = total if total is not None else reference
            fresh = []
            for row in rows:
                row_id = _row_id(row, key)
                if row_id is None or row_id not in given:
                    fresh.append(row)
                if row_id is not None:
                    given.add(row_id)
            if fresh:
                yield fresh
            if not rows:
                if page == 1 and key in READ_SCOPES:
                    self._note(EMPTY_PAGES, str(pages), "an empty list said so")
                return
            if (pages is not None and page >= pages) or (pages is None and len(rows) < PER_PAGE):
                return
            page += 1

    def _list(
        self, resource: str, key: str, vis_state: VisState | None, extra: Params | None = None
    ) -> Iterator[list[Any]]:
        params: dict[str, str | int | list[int]] = dict(extra or {})
        if vis_state is not None:
            params["search[vis_state]"] = int(vis_state)
        what = f"the {resource} list of account {self._account_id}"
        return self._pages(self._account_path(resource), key, what, params)

    # ---- what FreshBooks was seen to do -----------------------------------------------------

    def _note(self, name: str, value: str, detail: str) -> None:
        """Learn `value` unless it already stands: a store write a day per fact, not per page."""
        if not self.learnt.stands(name, value):
            self.learnt.learn(name, value, detail)

    def _vendor_zone(self) -> tzinfo:
        return NEW_YORK if self.learnt.value(VENDOR_TIMES) == "America/New_York" else UTC

    def _vendor(self, row: object) -> Vendor:
        return parse_vendor(row, zone=self._vendor_zone())

    def _listed_bill(self, row: object) -> Bill:
        """A bill from a list response; one whose payload has no `lines` key at all is marked
        `lines_missing` (an empty `lines` list is a bill without lines, and is not)."""
        if isinstance(row, Mapping) and "lines" not in row:
            self._note(LIST_LINES, "omitted", "a listed bill came without a `lines` key")
            return replace(parse_bill(row), lines_missing=True)
        if isinstance(row, Mapping):
            self._note(LIST_LINES, "included", "listed bills carry `lines`")
        return parse_bill(row)

    # ---- BillSource ------------------------------------------------------------------------

    def list_vendors(self, *, vis_state: VisState | None = None) -> Iterator[Vendor]:
        for rows in self._list("bill_vendors", "bill_vendors", vis_state):
            yield from (self._vendor(row) for row in rows)

    def list_bills(self, *, vis_state: VisState | None = None) -> Iterator[Bill]:
        for rows in self._list("bills", "bills", vis_state):
            yield from (self._listed_bill(row) for row in rows)

    def recent_vendor_pages(self) -> Iterator[list[Vendor]]:
        """Pages of vendors, most recently updated first (sorted here if FreshBooks does not)."""
        return self._recent("bill_vendors", self._vendor)

    def recent_bill_pages(self) -> Iterator[list[Bill]]:
        """Pages of bills, most recently updated first (sorted here if FreshBooks does not)."""
        return self._recent("bills", self._listed_bill)

    def _recent(self, resource: str, parse: Callable[[Any], Dated]) -> Iterator[list[Dated]]:
        """Newest-first pages, with FreshBooks' handling of the sort checked on the way.

        Ignored or refused, the sort is not sent again for a day: the whole list is
        read and sorted here (correct, one request per 100 objects). Page 1 tells
        most: out of order means ignored; newest-updated first yet not in creation
        order means honoured. A page in both orders at once proves nothing, and an
        `updated_at_asc` probe of a few rows settles it.
        """
        fact = SORT_FACTS[resource]
        if self.learnt.stands(fact, "ignored", "rejected"):
            yield from _newest_first_pages(self._everything(resource, parse, {}))
            return
        first: list[Dated]
        rest: list[Dated]
        try:
            pages = self._list(resource, resource, None, NEWEST_FIRST)
            first = [parse(row) for row in next(pages, [])]
        except RemoteError as error:  # a 400 as seen, or any refusal of the parameter
            if isinstance(error, NotFoundError):
                raise
            self.learnt.learn(fact, "rejected", f"sort=updated_at_desc was refused: {error}")
            yield from _newest_first_pages(self._everything(resource, parse, {}))
            return
        undated = any(obj.updated_at is None for obj in first)
        verdict = None if undated else _page_order(first)
        if verdict is None and not undated and self.learnt.value(fact) != "honoured":
            verdict = self._probe_ascending(resource, parse)
        if verdict == "ignored":
            self.learnt.learn(fact, "ignored", "a newest-first page came in another order")
            rest = [parse(row) for rows in pages for row in rows]  # the same, whole list
            yield from _newest_first_pages([*first, *rest])
            return
        if verdict == "honoured":
            self._note(fact, "honoured", "pages came newest-updated first, not in creation order")
        elif not undated and self.learnt.value(fact) != "honoured":  # cannot tell: sort here
            rest = [parse(row) for rows in pages for row in rows]
            yield from _newest_first_pages([*first, *rest])
            return
        # Honoured, or undated (the caller's order check then lists everything): as read.
        if first:
            yield first
        for rows in pages:
            yield [parse(row) for row in rows]

    def _probe_ascending(self, resource: str, parse: Callable[[Any], Dated]) -> str | None:
        """'honoured' or 'ignored' from a few rows asked for oldest first; None if unclear."""
        rows = self._probe(resource, OLDEST_FIRST)
        if rows is None:
            return None
        stamps = [obj.updated_at for obj in (parse(row) for row in rows)]
        if any(stamp is None for stamp in stamps) or len(set(stamps)) < 2:
            return None
        pairs = list(pairwise(stamps))
        return "honoured" if all(a <= b for a, b in pairs) else "ignored"  # type: ignore[operator]

    def _probe(self, resource: str, sort: Params) -> list[Any] | None:
        """The first few rows of a sorted listing; None when FreshBooks refused the sort."""
        query = {**sort, "page": 1, "per_page": PROBE_PER_PAGE}
        what = f"a sort probe of the {resource} list of account {self._account_id}"
        try:
            body = self._call("GET", self._account_path(resource), what, params=query)
        except RemoteError as error:
            if isinstance(error, NotFoundError):
                raise
            return None
        rows = _result(body, what).get(resource)
        return rows if isinstance(rows, list) else None

    def probe_sort(self, resource: str) -> str | None:
        """'honoured', 'ignored' or 'rejected' from a few rows asked for newest and oldest
        first (two small requests); None when the account's data cannot tell."""
        desc = self._probe(resource, NEWEST_FIRST)
        asc = self._probe(resource, OLDEST_FIRST) if desc is not None else None
        if desc is None or asc is None:
            return "rejected"
        parse: Callable[[Any], Vendor | Bill] = (
            self._vendor if resource == "bill_vendors" else parse_bill
        )
        down = [parse(row).updated_at for row in desc]
        up = [parse(row).updated_at for row in asc]
        if any(stamp is None for stamp in [*down, *up]) or len({*down, *up}) < 2:
            return None
        if any(a < b for a, b in pairwise(down)) or any(a > b for a, b in pairwise(up)):  # type: ignore[operator]
            return "ignored"
        return "honoured"

    def check_sort(self, resource: str, newest: datetime, oldest: datetime) -> None:
        """After a full listing: did the newest-first and oldest-first listings put the true
        newest and oldest `updated_at` first? Two small requests; re-checked each sweep."""
        fact = SORT_FACTS[resource]
        if newest == oldest:
            return  # one object, or all changed at once: no order to tell apart
        parse: Callable[[Any], Vendor | Bill] = (
            self._vendor if resource == "bill_vendors" else parse_bill
        )
        try:
            desc = self._probe(resource, NEWEST_FIRST)
            asc = self._probe(resource, OLDEST_FIRST) if desc else None
        except (RemoteError, RemoteUnavailableError) as error:
            # The listing this checks is complete; the check waits for the next sweep.
            log.info("could not check how FreshBooks sorts %s: %s", resource, error)
            return
        if desc is None:
            self.learnt.learn(fact, "rejected", "sort=updated_at_desc answered HTTP 400")
            return
        if not desc or not asc:
            return  # emptied while we looked
        first_desc = parse(desc[0]).updated_at
        first_asc = parse(asc[0]).updated_at
        if first_desc == newest and first_asc == oldest:
            self._note(
                fact, "honoured", "the sorted listings began with the true newest and oldest"
            )
        else:
            self.learnt.learn(
                fact, "ignored", "a sorted listing did not begin with the true newest or oldest"
            )

    def _everything(
        self, resource: str, parse: Callable[[Any], Dated], params: Params
    ) -> list[Dated]:
        return [parse(row) for rows in self._list(resource, resource, None, params) for row in rows]

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]:
        for rows in self._list("bill_payments", "bill_payments", vis_state):
            yield from self._with_bill_currency([parse_bill_payment(row) for row in rows])

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        """The payments of each bill, one `search[billid]` listing per bill.

        If FreshBooks ignored the filter, a page would hold other bills'
        payments: that page is given as it came (the caller sees the foreign
        bill ids) and the bill's listing stops there, so an ignored filter
        costs one page, never the whole payment list once per bill.
        """
        for bill_id in dict.fromkeys(int(i) for i in bill_ids):
            extra: Params = {"search[billid]": bill_id}
            for rows in self._list("bill_payments", "bill_payments", vis_state, extra):
                payments = self._with_bill_currency([parse_bill_payment(row) for row in rows])
                yield from payments
                if any(payment.bill_id != bill_id for payment in payments):
                    break

    def _with_bill_currency(self, payments: list[BillPayment]) -> list[BillPayment]:
        """A payment without a currency code is in its bill's currency: fetch those bills once."""
        missing = {p.bill_id for p in payments if not p.currency_code}
        if not missing:
            return payments
        currencies = {bill.fb_id: bill.currency_code for bill in self.get_bills(missing)}
        return [
            p if p.currency_code else replace(p, currency_code=currencies.get(p.bill_id, ""))
            for p in payments
        ]

    def _by_ids(
        self, resource: str, ids: Iterable[int], vis_state: VisState | None
    ) -> Iterator[list[Any]]:
        for chunk in _chunks(ids):
            yield from self._list(resource, resource, vis_state, {"search[ids][]": chunk})

    def get_vendors(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Vendor]:
        """Vendors by id, 100 per request; deleted ones only with `vis_state=DELETED`.

        `search[ids][]` on vendors is unconfirmed: an answer naming a vendor not asked
        for means the filter was ignored, a 400 that it is refused; either way each
        vendor is then fetched by its id (for a day, before the filter is tried again).
        """
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if self.learnt.stands(VENDOR_IDS, "ignored", "rejected"):
            return self._vendors_one_by_one(wanted, vis_state)
        found: list[Vendor] = []
        chunks = list(_chunks(wanted))
        for index, chunk in enumerate(chunks):
            asked = set(chunk)
            rest = [i for later in chunks[index:] for i in later]
            try:
                rows = [
                    row
                    for page in self._list(
                        "bill_vendors", "bill_vendors", vis_state, {"search[ids][]": chunk}
                    )
                    for row in self._only_asked(page, asked)
                ]
            except _FilterIgnoredError:
                self.learnt.learn(VENDOR_IDS, "ignored", "a listing by ids named other vendors")
                return [*found, *self._vendors_one_by_one(rest, vis_state)]
            except RemoteError as error:  # a 400 as seen, or any refusal of the filter
                if isinstance(error, NotFoundError):
                    raise
                self.learnt.learn(VENDOR_IDS, "rejected", f"search[ids][] was refused: {error}")
                return [*found, *self._vendors_one_by_one(rest, vis_state)]
            found.extend(self._vendor(row) for row in rows)
        if wanted:
            self._note(VENDOR_IDS, "honoured", "a listing by ids named only the vendors asked for")
        return found

    @staticmethod
    def _only_asked(rows: list[Any], asked: set[int]) -> list[Any]:
        for row in rows:
            row_id = _row_id(row, "bill_vendors")
            if row_id is None or int(row_id) not in asked:
                raise _FilterIgnoredError
        return rows

    def _vendors_one_by_one(self, ids: Iterable[int], vis_state: VisState | None) -> list[Vendor]:
        """Each vendor by id, keeping what a listing with `vis_state` would have shown."""
        found = []
        for vendor_id in ids:
            path = f"{self._account_path('bill_vendors')}/{int(vendor_id)}"
            try:
                body = self._call("GET", path, f"vendor {vendor_id} of account {self._account_id}")
            except NotFoundError:
                continue
            vendor = self._vendor(_result(body, f"vendor {vendor_id}").get("bill_vendor"))
            deleted = vendor.vis_state == VisState.DELETED
            if deleted == (vis_state == VisState.DELETED):
                found.append(vendor)
        return found

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]:
        """Bills by id, 100 per request; deleted ones only with `vis_state=DELETED`."""
        return [
            self._listed_bill(row) for rows in self._by_ids("bills", ids, vis_state) for row in rows
        ]

    def get_bill(self, bill_id: int) -> Bill | None:
        """One bill whatever its vis_state (deleted bills stay readable by id); None if unknown."""
        path = f"{self._account_path('bills')}/{int(bill_id)}"
        try:
            body = self._call("GET", path, f"bill {bill_id} of account {self._account_id}")
        except NotFoundError:
            return None
        bill = _result(body, f"bill {bill_id}").get("bill")
        return parse_bill(bill)

    # ---- identity --------------------------------------------------------------------------

    def me(self) -> list[BusinessMembership]:
        """The businesses this login reaches, to pick the `account_id` from."""
        body = self._call("GET", "/auth/api/v1/users/me", "the identity of this login")
        response = body.get("response") if isinstance(body, Mapping) else None
        return parse_memberships(response)

    # ---- webhook callbacks -----------------------------------------------------------------

    def _callbacks_path(self, callback_id: int | None = None) -> str:
        path = f"/events/account/{quote(self._account_id, safe='')}/events/callbacks"
        return path if callback_id is None else f"{path}/{int(callback_id)}"

    def register_callback(self, event: str, uri: str) -> Callback:
        """Create a callback (unverified); FreshBooks then POSTs the verifier to `uri`."""
        body = self._call(
            "POST",
            self._callbacks_path(),
            f"registering a {event} callback",
            json_body={"callback": {"event": event, "uri": uri}},
            idempotent=False,
        )
        return parse_callback(_result(body, "the new callback").get("callback"))

    def list_callbacks(self) -> list[Callback]:
        what = f"the callbacks list of account {self._account_id}"
        pages = self._pages(self._callbacks_path(), "callbacks", what, {})
        return [parse_callback(row) for rows in pages for row in rows]

    def verify_callback(self, callback_id: int, verifier: str) -> Callback:
        body = self._call(
            "PUT",
            self._callbacks_path(callback_id),
            f"verifying callback {callback_id}",
            json_body={"callback": {"verifier": verifier}},
        )
        return parse_callback(_result(body, f"callback {callback_id}").get("callback"))

    def resend_verification(self, callback_id: int) -> None:
        self._call(
            "PUT",
            self._callbacks_path(callback_id),
            f"resending the verification of callback {callback_id}",
            json_body={"callback": {"resend": True}},
        )

    def delete_callback(self, callback_id: int) -> None:
        self._call("DELETE", self._callbacks_path(callback_id), f"deleting callback {callback_id}")
