"""Fetch: read FreshBooks into `Fetched` slices, nothing written while it is read.

Every mode of a push reads through here (a whole listing a slice at a time, the
incremental pass from the watermarks, the objects webhooks named) and hands the
result to `sync.ingest`, which records it. A kill while FreshBooks is being read
loses nothing: no sync state is written on this side (`with_lines` only reads
the stored snapshots).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from fbstampli.models import Bill, BillPayment, Kind, SourceObject, Vendor, VisState
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.snapshots import stored_bills
from fbstampli.sync.ports import BillSource
from fbstampli.sync.prefetch import AHEAD, read_ahead

log = logging.getLogger(__name__)

Advance = Callable[[int], None]
Stamped = TypeVar("Stamped", Vendor, Bill)

# How far behind the newest `updated_at` seen the next incremental pass starts:
# room for FreshBooks' own clocks and for a change committed while we listed.
WATERMARK_MARGIN = timedelta(minutes=15)
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclasses.dataclass(slots=True)
class Fetched:
    vendors: list[Vendor] = dataclasses.field(default_factory=list)
    bills: list[Bill] = dataclasses.field(default_factory=list)
    payments: list[BillPayment] = dataclasses.field(default_factory=list)

    def objects(self) -> Iterable[SourceObject]:
        yield from self.vendors
        yield from self.bills
        yield from self.payments


def fetch_all(source: BillSource, *, include_deleted: bool, advance: Advance) -> Fetched:
    """List every vendor, bill and bill payment; deleted ones only when asked (a full sweep)."""
    fetched = Fetched()
    states: tuple[VisState | None, ...] = (None, VisState.DELETED) if include_deleted else (None,)
    for state in states:
        for vendor in source.list_vendors(vis_state=state):
            fetched.vendors.append(vendor)
            advance(1)
        for bill in source.list_bills(vis_state=state):
            fetched.bills.append(bill)
            advance(1)
    for payment in source.list_bill_payments():
        fetched.payments.append(payment)
        advance(1)
    if include_deleted:
        fetched.payments.extend(source.list_bill_payments(vis_state=VisState.DELETED))
    return fetched


# Objects written per transaction by a streamed listing (first sync, full sweep).
CHUNK = 500
Item = TypeVar("Item")


def _slices(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    part: list[Item] = []
    for item in items:
        part.append(item)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part


def fetch_all_chunks(
    source: BillSource,
    *,
    include_deleted: bool,
    advance: Advance,
    size: int = CHUNK,
    ahead: int = AHEAD,
) -> Generator[Fetched]:
    """`fetch_all` a slice at a time: every vendor, then every bill, then every payment.

    The caller ingests each slice before it asks for the next, so memory follows
    the slice, not the account. The order matters: a bill row carries its vendor's
    name and a payment row its bill's number, and both are read back from the
    snapshots the earlier slices committed.

    The pages are read by a worker thread up to `ahead` slices before they are
    asked for (`sync.prefetch`), so the network waits while the caller works, not
    after it; the worker only reads. `advance` is called here, in the caller's
    thread. Close this generator (`contextlib.closing`) when stopping early, so
    the worker stops with it.
    """
    listed = _listed_slices(source, include_deleted=include_deleted, size=size)
    with closing(read_ahead(listed, ahead=ahead, name="fbstampli-listing")) as slices:
        for fetched in slices:
            advance(len(fetched.vendors) + len(fetched.bills) + len(fetched.payments))
            yield fetched


def _listed_slices(source: BillSource, *, include_deleted: bool, size: int) -> Iterator[Fetched]:
    states: tuple[VisState | None, ...] = (None, VisState.DELETED) if include_deleted else (None,)
    for state in states:
        for vendors in _slices(source.list_vendors(vis_state=state), size):
            yield Fetched(vendors=vendors)
    for state in states:
        for bills in _slices(source.list_bills(vis_state=state), size):
            yield Fetched(bills=bills)
    for state in states:
        for payments in _slices(source.list_bill_payments(vis_state=state), size):
            yield Fetched(payments=payments)


def newer_than(pages: Iterable[Sequence[Stamped]], watermark: datetime) -> list[Stamped] | None:
    """Objects updated at or after `watermark`, read newest first until a page reaches below it.

    None when the order cannot be trusted (a missing timestamp, or one later
    than the one before it, as when FreshBooks ignores the sort): the caller
    then lists everything. A whole page is checked before stopping, so an
    unsorted listing is not taken for a sorted one by a few lucky rows.
    """
    taken: list[Stamped] = []
    previous: datetime | None = None
    for page in pages:
        for obj in page:
            stamp = obj.updated_at
            if stamp is None or (previous is not None and stamp > previous):
                return None
            previous = stamp
        taken.extend(
            obj for obj in page if obj.updated_at is not None and obj.updated_at >= watermark
        )
        if previous is not None and previous < watermark:
            break
    return taken


def fetch_recent(
    source: BillSource,
    *,
    watermarks: Mapping[Kind, datetime],
    advance: Advance,
    payments: bool = True,
) -> Fetched:
    """The incremental pass: vendors and bills changed since their watermark, every payment.

    Bill payments carry no timestamp, so they are listed whole unless `payments`
    is False: then the caller reads the payments of the bills that moved
    (`sync.payments`).
    """
    fetched = Fetched()
    vendors = newer_than(source.recent_vendor_pages(), watermarks[Kind.VENDOR])
    if vendors is None:
        log.info(
            "vendors did not come newest first (the sort was ignored, or one changed "
            "while listed); listing them all"
        )
        vendors = list(source.list_vendors())
    fetched.vendors = vendors
    bills = newer_than(source.recent_bill_pages(), watermarks[Kind.BILL])
    if bills is None:
        log.info(
            "bills did not come newest first (the sort was ignored, or one changed "
            "while listed); listing them all"
        )
        bills = list(source.list_bills())
    fetched.bills = bills
    fetched = with_recent_deletions(source, fetched, watermarks)
    advance(len(vendors) + len(bills))
    if not payments:
        return fetched
    for payment in source.list_bill_payments():
        fetched.payments.append(payment)
        advance(1)
    return fetched


def with_recent_deletions(
    source: BillSource, fetched: Fetched, watermarks: Mapping[Kind, datetime]
) -> Fetched:
    """Vendors and bills deleted since their watermark, read as the live ones are.

    FreshBooks leaves deleted objects out of every listing unless asked with
    `search[vis_state]=1`; deleting one moves its `updated_at`, so the deleted
    listing, newest first, costs one request per kind while nothing was deleted.
    An order that cannot be trusted lists every deleted object; the full sweep
    still lists them all and finds what this missed. An object listed both ways
    (deleted or restored while read) counts as its later version.
    """
    vendors = newer_than(source.recent_deleted_vendor_pages(), watermarks[Kind.VENDOR])
    if vendors is None:
        vendors = list(source.list_vendors(vis_state=VisState.DELETED))
    bills = newer_than(source.recent_deleted_bill_pages(), watermarks[Kind.BILL])
    if bills is None:
        bills = list(source.list_bills(vis_state=VisState.DELETED))
    return dataclasses.replace(
        fetched,
        vendors=_latest([*fetched.vendors, *vendors]),
        bills=_latest([*fetched.bills, *bills]),
    )


def _latest(objects: Sequence[Stamped]) -> list[Stamped]:
    """One object per id, the most recently updated, in first-seen order."""
    chosen: dict[int, Stamped] = {}
    for obj in objects:
        known = chosen.get(obj.fb_id)
        if known is None or (obj.updated_at or _EPOCH) > (known.updated_at or _EPOCH):
            chosen[obj.fb_id] = obj
    return list(chosen.values())


def with_lines(store: Store, source: BillSource, fetched: Fetched, report: RunReport) -> Fetched:
    """Bills listed without a `lines` key get their lines before anything is rendered.

    From the stored snapshot when FreshBooks' `updated_at` is the one stored (the
    bill did not change since it was fetched whole), else from the bill's own
    GET: one request per changed bill. A deleted bill is never sent, so it is
    not fetched; a bill gone between the listing and its GET is left for the
    next run, never rendered without its lines.
    """
    missing = {bill.fb_id for bill in fetched.bills if bill.lines_missing}
    if not missing:
        return fetched
    stored = stored_bills(store, ids=missing)
    bills: list[Bill] = []
    fetched_whole = 0
    for bill in fetched.bills:
        if not bill.lines_missing:
            bills.append(bill)
            continue
        known = stored.get(bill.fb_id)
        if bill.vis_state == VisState.DELETED:
            lines = known.lines if known else ()
            bills.append(dataclasses.replace(bill, lines=lines, lines_missing=False))
        elif known and bill.updated_at is not None and known.updated_at == bill.updated_at:
            bills.append(dataclasses.replace(bill, lines=known.lines, lines_missing=False))
        else:
            whole = source.get_bill(bill.fb_id)
            fetched_whole += 1
            if whole is not None and not whole.lines_missing:
                bills.append(whole)
    report.add("requests.bill_for_lines", fetched_whole)
    return dataclasses.replace(fetched, bills=bills)


# resource -> (newest, oldest) `updated_at` of the live objects listed so far.
SortExtremes = dict[str, tuple[datetime, datetime]]


def sort_extremes(fetched: Fetched, seen: SortExtremes | None = None) -> SortExtremes:
    """The newest and oldest `updated_at` per resource, carried across slices of a listing."""
    extremes = dict(seen or {})
    for resource, objects in (("bill_vendors", fetched.vendors), ("bills", fetched.bills)):
        stamps = [
            obj.updated_at
            for obj in objects
            if obj.vis_state != VisState.DELETED and obj.updated_at is not None
        ]
        if not stamps:
            continue
        newest, oldest = max(stamps), min(stamps)
        if resource in extremes:
            newest = max(newest, extremes[resource][0])
            oldest = min(oldest, extremes[resource][1])
        extremes[resource] = (newest, oldest)
    return extremes


def check_sort_extremes(source: BillSource, extremes: SortExtremes) -> None:
    """After a full listing, the true newest and oldest `updated_at` are known: ask
    FreshBooks' sorted listings whether they agree (two small requests a kind)."""
    for resource in ("bill_vendors", "bills"):
        if resource in extremes:
            source.check_sort(resource, *extremes[resource])


def check_sort(source: BillSource, fetched: Fetched) -> None:
    """`check_sort_extremes` for a listing held whole (a dry run)."""
    check_sort_extremes(source, sort_extremes(fetched))


def next_watermarks(fetched: Fetched, previous: Mapping[Kind, datetime]) -> dict[Kind, datetime]:
    """Where the next incremental pass starts: the newest change seen, less the margin.

    A watermark never moves back, and is stored only after the snapshots of
    everything in its window are committed.
    """
    marks = dict(previous)
    for kind, objects in ((Kind.VENDOR, fetched.vendors), (Kind.BILL, fetched.bills)):
        stamps = [obj.updated_at for obj in objects if obj.updated_at is not None]
        if stamps:
            candidate = max(stamps) - WATERMARK_MARGIN
            marks[kind] = max(candidate, marks.get(kind, candidate))
    return marks


def with_named(
    source: BillSource, fetched: Fetched, *, bill_ids: Sequence[int], vendor_ids: Sequence[int]
) -> Fetched:
    """Add the objects webhooks named that the incremental pass did not return.

    An event is marked processed after this run, so what it names must be looked
    at now, even if FreshBooks did not move its `updated_at` past the watermark.
    """
    have_bills = {bill.fb_id for bill in fetched.bills}
    have_vendors = {vendor.fb_id for vendor in fetched.vendors}
    extra = fetch_ids(
        source,
        bill_ids=[i for i in bill_ids if i not in have_bills],
        vendor_ids=[i for i in vendor_ids if i not in have_vendors],
    )
    return dataclasses.replace(
        fetched,
        vendors=[*fetched.vendors, *extra.vendors],
        bills=[*fetched.bills, *extra.bills],
    )


def fetch_ids(source: BillSource, *, bill_ids: Sequence[int], vendor_ids: Sequence[int]) -> Fetched:
    """Re-fetch the objects webhooks named (the events carry no data).

    One FreshBooks left out was deleted (`bill.delete`, `bill_vendor.delete`):
    it is asked for among the deleted, one more request only then.
    """
    fetched = Fetched()
    if vendor_ids:
        fetched.vendors = source.get_vendors(vendor_ids)
        gone = sorted(set(vendor_ids) - {v.fb_id for v in fetched.vendors})
        if gone:
            fetched.vendors += source.get_vendors(gone, vis_state=VisState.DELETED)
    if bill_ids:
        fetched.bills = source.get_bills(bill_ids)
        gone = sorted(set(bill_ids) - {b.fb_id for b in fetched.bills})
        if gone:
            fetched.bills += source.get_bills(gone, vis_state=VisState.DELETED)
    return fetched
