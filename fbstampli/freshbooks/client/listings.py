"""FreshBooks' listings of vendors and bills, newest first whether or not FreshBooks
sorts them, with how it handles the sort checked on the way (`models/behaviour.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from itertools import pairwise
from typing import Any, TypeVar

from fbstampli.errors import RemoteError, RemoteUnavailableError
from fbstampli.freshbooks.client.errors import NotFoundError
from fbstampli.freshbooks.client.session import PER_PAGE, Params, Session, result_of
from fbstampli.freshbooks.parse import parse_bill, parse_vendor
from fbstampli.models import Bill, Vendor, VisState
from fbstampli.models.behaviour import (
    LIST_LINES,
    NEW_YORK,
    SORT_BILLS,
    SORT_VENDORS,
    VENDOR_TIMES,
    ids_monotone,
)

log = logging.getLogger(__name__)

NEWEST_FIRST: Params = {"sort": "updated_at_desc"}  # unconfirmed: checked as it is used
OLDEST_FIRST: Params = {"sort": "updated_at_asc"}
PROBE_PER_PAGE = 3  # rows a sort probe asks for: enough to see an order, cheap to send
SORT_FACTS = {"bills": SORT_BILLS, "bill_vendors": SORT_VENDORS}
Dated = TypeVar("Dated", Vendor, Bill)


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


class Listings(Session):
    """The listings a sync reads, each in the order it needs."""

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

    def recent_deleted_vendor_pages(self) -> Iterator[list[Vendor]]:
        """Pages of deleted vendors, most recently updated (deleted) first."""
        return self._recent_deleted("bill_vendors", self._vendor)

    def recent_deleted_bill_pages(self) -> Iterator[list[Bill]]:
        """Pages of deleted bills, most recently updated (deleted) first."""
        return self._recent_deleted("bills", self._listed_bill)

    def _recent_deleted(
        self, resource: str, parse: Callable[[Any], Dated]
    ) -> Iterator[list[Dated]]:
        """`search[vis_state]=1` newest first: one request while nothing was deleted.

        The order is the live listing's fact; where the sort is known ignored or
        refused, the deleted list is read whole and sorted here. The caller checks
        every page's order all the same (`sync.fetch.newer_than`).
        """
        if self.learnt.stands(SORT_FACTS[resource], "ignored", "rejected"):
            deleted = [
                parse(row)
                for rows in self._list(resource, resource, VisState.DELETED, {})
                for row in rows
            ]
            yield from _newest_first_pages(deleted)
            return
        for rows in self._list(resource, resource, VisState.DELETED, NEWEST_FIRST):
            yield [parse(row) for row in rows]

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
        rows = result_of(body, what).get(resource)
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
