"""The FreshBooks API client: paging, retries inside one call, token refresh, error mapping.

Every requests exception and every FreshBooks error body stops here and leaves
as an `fbstampli.errors` error of one line built from hosts, paths and ids,
never from headers or bodies carrying secrets. Retries never outlive a call;
retries across runs belong to the sync engine.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol
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

log = logging.getLogger(__name__)

PER_PAGE = 100  # FreshBooks silently caps per_page at 100
MAX_RETRY_AFTER = 120.0  # seconds; a longer Retry-After is cut to this, the run stays bounded
ERRNO_ACCESS_DENIED = 1003
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
BACKOFF_JITTER = 0.5

Params = Mapping[str, str | int | list[int]]
NEWEST_FIRST: Params = {"sort": "updated_at_desc"}  # unconfirmed for bills; checked by the caller
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
    ) -> None:
        self._settings = settings
        self._tokens = token_manager
        self._account_id = account_id
        self._session = session or requests.Session()
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
            response = self._session.request(
                method,
                url,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {access}", "Accept": "application/json"},
                timeout=self._settings.timeout_seconds,
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
        if status == 401:
            raise _UnauthorizedError(message)
        if status == 429:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise _TransientError("rate limited (HTTP 429)", status=429, retry_after=retry_after)
        if status >= 500 or status == 409:
            raise _TransientError(f"HTTP {status}", status=status)
        if status == 403:
            raise AuthRequiredError(
                f"FreshBooks refused {what}: the login lacks a permission or scope ({message}); "
                f"run `fbstampli auth login` granting: {self._settings.scopes}"
            )
        if status == 404:
            raise NotFoundError(f"FreshBooks found no {what}: {message} (HTTP 404)")
        if status >= 400:
            raise RemoteError(f"FreshBooks refused {what}: {message} (HTTP {status})")
        if body is None:
            raise _TransientError("unreadable JSON response", status=status)
        # FreshBooks may report an error with HTTP 200 (FRESHBOOKS.md §4.3, §5.12).
        if isinstance(body, Mapping) and "result" not in (body.get("response") or {}):
            embedded = error_message(body)
            if embedded is not None:
                if error_number(body) == ERRNO_ACCESS_DENIED:
                    raise AuthRequiredError(f"FreshBooks refused {what}: {embedded}")
                raise RemoteError(f"FreshBooks refused {what}: {embedded}")
        return body

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

    # ---- BillSource ------------------------------------------------------------------------

    def list_vendors(self, *, vis_state: VisState | None = None) -> Iterator[Vendor]:
        for rows in self._list("bill_vendors", "bill_vendors", vis_state):
            yield from (parse_vendor(row) for row in rows)

    def list_bills(self, *, vis_state: VisState | None = None) -> Iterator[Bill]:
        for rows in self._list("bills", "bills", vis_state):
            yield from (parse_bill(row) for row in rows)

    def recent_vendor_pages(self) -> Iterator[list[Vendor]]:
        """Pages of vendors, most recently updated first (if FreshBooks honours the sort)."""
        for rows in self._list("bill_vendors", "bill_vendors", None, NEWEST_FIRST):
            yield [parse_vendor(row) for row in rows]

    def recent_bill_pages(self) -> Iterator[list[Bill]]:
        """Pages of bills, most recently updated first (if FreshBooks honours the sort)."""
        for rows in self._list("bills", "bills", None, NEWEST_FIRST):
            yield [parse_bill(row) for row in rows]

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
        """Vendors by id, 100 per request; deleted ones only with `vis_state=DELETED`."""
        return [
            parse_vendor(row)
            for rows in self._by_ids("bill_vendors", ids, vis_state)
            for row in rows
        ]

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]:
        """Bills by id, 100 per request; deleted ones only with `vis_state=DELETED`."""
        return [parse_bill(row) for rows in self._by_ids("bills", ids, vis_state) for row in rows]

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
