"""The FreshBooks API session: one request at a time, retries inside one call, token
refresh, and offset paging that survives a list moving while it is read.

Every requests exception stops here (`errors` maps the answers). Retries never
outlive a call; retries across runs belong to the sync engine.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import AuthRequiredError, RemoteError, RemoteUnavailableError
from fbstampli.freshbooks.client.errors import (
    READ_SCOPES,
    TransientError,
    UnauthorizedError,
    interpret,
)
from fbstampli.models import VisState
from fbstampli.models.behaviour import EMPTY_PAGES, Fact, Learnt, OnLearn

log = logging.getLogger(__name__)

PER_PAGE = 100  # FreshBooks silently caps per_page at 100
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
BACKOFF_JITTER = 0.5

Params = Mapping[str, str | int | list[int]]
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


def _backoff(attempt_number: int) -> float:
    """Exponential from 0.5 s, capped at 30 s, plus jitter so parallel clients spread out."""
    base = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (attempt_number - 1))
    return base + random.uniform(0, BACKOFF_JITTER)  # noqa: S311 - jitter, not a secret


def _count(value: object) -> int | None:
    """`pages` or `total` when FreshBooks sent a usable number; a bool is not one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def listed_id(row: object, key: str) -> int | str | None:
    """A listed row's FreshBooks id (vendors call theirs `vendorid`), or None if it has none."""
    if not isinstance(row, Mapping):
        return None
    value = row.get(ID_KEYS.get(key, "id"), row.get("id"))
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def id_chunks(ids: Iterable[int], size: int = PER_PAGE) -> Iterator[list[int]]:
    unique = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def result_of(body: object, what: str) -> Mapping[str, Any]:
    response = body.get("response") if isinstance(body, Mapping) else None
    result = response.get("result") if isinstance(response, Mapping) else None
    if not isinstance(result, Mapping):
        raise RemoteError(f"FreshBooks answered {what} without a `response.result` envelope")
    return result


class Session:
    """Requests to one FreshBooks account, and what FreshBooks was seen to do (`learnt`)."""

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
        self._lessons: dict[str, Fact] = {}
        self._lessons_lock = threading.Lock()
        self.learnt.on_learn = self._keep_lesson(self.learnt.on_learn)
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

    # ---- what was learnt, handed to the caller -------------------------------------------

    def _keep_lesson(self, passed_on: OnLearn | None) -> OnLearn:
        """Each conclusion kept for `lessons`, and passed on to the learnt's own listener.

        The client writes nothing: a conclusion may be reached in a read-ahead worker
        thread in the middle of a listing, and storing it there would take the state's
        lock from that thread. The caller takes `lessons` and stores them itself.
        """

        def kept(name: str, fact: Fact) -> None:
            with self._lessons_lock:
                self._lessons[name] = fact
            if passed_on is not None:
                passed_on(name, fact)

        return kept

    def lessons(self) -> dict[str, Fact]:
        """The conclusions reached since last asked (taken, not copied), for the caller to store.

        A `learnt` put in place later (an API report's, in memory) is not watched: what
        it learns is nobody's to store.
        """
        with self._lessons_lock:
            taken, self._lessons = self._lessons, {}
        return taken

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
            raise TransientError("timed out") from None
        except requests.RequestException as error:
            raise TransientError(f"connection failed: {type(error).__name__}") from None
        return interpret(response, what, self._settings.scopes)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientError) and error.retry_after is not None:
            return error.retry_after
        return _backoff(state.attempt_number)

    def _with_retries(
        self, attempt: Callable[[], object], *, idempotent: bool, what: str
    ) -> object:
        def worth_retrying(error: BaseException) -> bool:
            # A POST that may have landed is only replayed when FreshBooks said "not now".
            return isinstance(error, TransientError) and (idempotent or error.status == 429)

        retrying = Retrying(
            stop=stop_after_attempt(self._settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(worth_retrying),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientError as error:
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
        except UnauthorizedError:
            log.info("FreshBooks answered 401 to %s; refreshing the access token once", what)
        access = self._tokens.refresh_after_unauthorized(access)
        try:
            return self._with_retries(attempt, idempotent=idempotent, what=what)
        except UnauthorizedError as error:
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
            result = result_of(body, what)
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
                row_id = listed_id(row, key)
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
