"""Ingest: read FreshBooks, hash what it has, and queue what changed into the outbox.

Order: fetch everything first (no state written while FreshBooks is being
read, so a kill during listing loses nothing), then one transaction writes
the snapshots, the deliveries and the audit rows together. Objects that did
not change cost no write at all.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import closing
from datetime import date, datetime, timedelta
from typing import TypeVar

from fbstampli.errors import RenderError
from fbstampli.models import Bill, BillPayment, Kind, SourceObject, Vendor, VisState, kind_of
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.outbox import (
    Queued,
    queue_deliveries,
    save_snapshots,
    snapshots_for,
    vendor_names,
)
from fbstampli.store.snapshots import (
    payload_of,
    restamp,
    stored_bills,
    stored_payments_of_vendors,
    stored_reconcile_facts,
)
from fbstampli.sync.plan import Change, Decision, Observed, Snapshot, plan_changes
from fbstampli.sync.ports import BillSource, Renderer
from fbstampli.sync.prefetch import AHEAD, read_ahead

log = logging.getLogger(__name__)

Advance = Callable[[int], None]
Stamped = TypeVar("Stamped", Vendor, Bill)

# How far behind the newest `updated_at` seen the next incremental pass starts:
# room for FreshBooks' own clocks and for a change committed while we listed.
WATERMARK_MARGIN = timedelta(minutes=15)


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
    advance(len(vendors) + len(bills))
    if not payments:
        return fetched
    for payment in source.list_bill_payments():
        fetched.payments.append(payment)
        advance(1)
    return fetched


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
    """Re-fetch the objects webhooks named (the events carry no data)."""
    fetched = Fetched()
    if vendor_ids:
        fetched.vendors = source.get_vendors(vendor_ids)
    if bill_ids:
        fetched.bills = source.get_bills(bill_ids)
    return fetched


def observe(
    fetched: Fetched,
    renderer: Renderer,
    names: dict[int, str],
    *,
    since: date | None,
    problems: list[str],
    known_bills: Mapping[int, Bill] | None = None,
    skip_bills: Collection[int] = (),
) -> list[tuple[Observed, SourceObject]]:
    """Render and hash every fetched object, leaving out bills before `since` and their payments.

    `known_bills` are stored bills a payment row may name but this run did not fetch;
    `skip_bills` are bills an earlier slice of this run left out for `since`.
    """
    for vendor in fetched.vendors:
        names[vendor.fb_id] = vendor.name
    bills = {**(known_bills or {}), **{bill.fb_id: bill for bill in fetched.bills}}
    skipped_bills = {bill.fb_id for bill in bills.values() if since and bill.issue_date < since}
    skipped_bills.update(skip_bills)
    observed: list[tuple[Observed, SourceObject]] = []
    for obj in fetched.objects():
        if isinstance(obj, Bill) and obj.fb_id in skipped_bills:
            continue
        if isinstance(obj, BillPayment) and obj.bill_id in skipped_bills:
            continue
        try:
            rows = tuple(renderer.rows(obj, names, bills))
        except RenderError as error:
            problems.append(f"{kind_of(obj).value} {obj.fb_id} cannot be rendered: {error}")
            continue
        updated = getattr(obj, "updated_at", None)
        observed.append(
            (
                Observed(
                    kind=kind_of(obj),
                    fb_id=obj.fb_id,
                    content_hash=renderer.content_hash(rows),
                    vis_state=int(obj.vis_state),
                    rows=rows,
                    updated_at=updated.isoformat() if updated else None,
                ),
                obj,
            )
        )
    return observed


def apply_changes(
    store: Store,
    observed: list[tuple[Observed, SourceObject]],
    *,
    send_payments: bool,
    report_deleted: bool,
    run_id: int | None,
    report: RunReport,
) -> list[Decision]:
    """Write snapshots and queue deliveries for what changed, in one transaction.

    Unchanged bills whose `updated_at` moved keep the new stamp, so the
    payments of a bill are read once per move (`sync.payments`).
    """
    stored = {
        (kind, fb_id): Snapshot(*value)
        for kind in Kind
        for fb_id, value in snapshots_for(
            store, kind, (item.fb_id for item, _ in observed if item.kind is kind)
        ).items()
    }
    by_key = {(item.kind, item.fb_id): obj for item, obj in observed}
    decisions = plan_changes((item for item, _ in observed), stored)
    changed = {(d.observed.kind, d.observed.fb_id) for d in decisions}
    stale = _stale_facts(store, observed, changed)
    with store.transaction():
        _apply(store, decisions, by_key, send_payments, report_deleted, run_id, report)
        # The same rows, so nothing to send; but reconcile reads these snapshots.
        refreshed = [
            (i.kind, i.fb_id, i.updated_at, i.vis_state, i.content_hash, payload_of(obj))
            for i, obj in stale
        ]
        save_snapshots(store, refreshed)
        restamp(
            store,
            Kind.BILL,
            (
                (item.fb_id, item.updated_at)
                for item, _ in observed
                if item.kind is Kind.BILL
                and item.updated_at is not None
                and (item.kind, item.fb_id) not in changed
                and (item.kind, item.fb_id) in stored
            ),
        )
    report.add("unchanged", len(observed) - len(decisions))
    return decisions


def _reconcile_facts(obj: SourceObject) -> tuple[object, ...] | None:
    """What reconcile reads of a bill or payment, as its stored snapshot has it."""
    if isinstance(obj, Bill):
        return (obj.currency_code, str(obj.total_amount))
    if isinstance(obj, BillPayment):
        return (str(obj.amount), obj.currency_code, obj.bill_id)
    return None


def _stale_facts(
    store: Store,
    observed: list[tuple[Observed, SourceObject]],
    changed: set[tuple[Kind, int]],
) -> list[tuple[Observed, SourceObject]]:
    """Unchanged objects whose amount, currency or bill moved all the same.

    A version is its rendered rows: a template without an amount column sees no
    change when a payment's amount is corrected. Reconcile reads the amount
    from the snapshot, so the snapshot is refreshed (nothing is sent).
    """
    stale: list[tuple[Observed, SourceObject]] = []
    for kind in (Kind.BILL, Kind.PAYMENT):
        same = {
            item.fb_id: (item, obj)
            for item, obj in observed
            if item.kind is kind and (kind, item.fb_id) not in changed
        }
        for fb_id, facts in stored_reconcile_facts(store, kind, same).items():
            item, obj = same[fb_id]
            if facts != _reconcile_facts(obj):
                stale.append((item, obj))
    return stale


def _apply(
    store: Store,
    decisions: Sequence[Decision],
    by_key: dict[tuple[Kind, int], SourceObject],
    send_payments: bool,
    report_deleted: bool,
    run_id: int | None,
    report: RunReport,
) -> None:
    """Snapshots, deliveries and audit rows of a slice's changes, a few statements in all.

    The same rows, in the same order, as writing each decision in turn: a snapshot
    for every change, a delivery for every change that is sent, an audit row for
    each delivery queued and each deletion reported, in the order of `decisions`.
    """
    save_snapshots(
        store,
        [
            (
                d.observed.kind,
                d.observed.fb_id,
                d.observed.updated_at,
                d.observed.vis_state,
                d.observed.content_hash,
                payload_of(by_key[(d.observed.kind, d.observed.fb_id)]),
            )
            for d in decisions
        ],
    )
    sent = [
        d
        for d in decisions
        if d.change is not Change.DELETED and (d.observed.kind is not Kind.PAYMENT or send_payments)
    ]
    queued = queue_deliveries(
        store,
        [
            Queued(d.observed.kind, d.observed.fb_id, d.observed.content_hash, d.observed.rows)
            for d in sent
        ],
    )
    was_queued = {id(d): q for d, q in zip(sent, queued, strict=True)}
    now = store.now_text()
    audit: list[tuple[object, ...]] = []
    for decision in decisions:
        item = decision.observed
        if decision.change is Change.DELETED:
            if report_deleted:
                audit.append(
                    (
                        now,
                        run_id,
                        item.kind.value,
                        item.fb_id,
                        "deleted_in_freshbooks",
                        "deleted in FreshBooks; Stampli has no delete: cancel it there if needed",
                    )
                )
                report.add("deleted")
                report.notes.append(f"{item.kind.value} {item.fb_id} was deleted in FreshBooks")
        elif was_queued.get(id(decision)):
            audit.append(
                (
                    now,
                    run_id,
                    item.kind.value,
                    item.fb_id,
                    f"queued_{decision.change.value}",
                    f"version {item.content_hash[:12]}",
                )
            )
            report.add(f"queued.{item.kind.value}")
    if audit:
        store.audit_many(audit)


def with_stored_bills(store: Store, fetched: Fetched, names: Mapping[int, str]) -> Fetched:
    """Add the stored bills and payments of renamed vendors, so their rows are rendered with
    the new name.

    The incremental pass does not fetch a bill that did not change, nor (when
    payments follow their bills) its payments, but a bill or payment row can
    carry its vendor's name; the snapshot is as good as a fetch.
    """
    renamed = {v.fb_id for v in fetched.vendors if v.fb_id in names and names[v.fb_id] != v.name}
    if not renamed:
        return fetched
    have = {bill.fb_id for bill in fetched.bills}
    extra = [b for b in stored_bills(store, vendor_ids=renamed).values() if b.fb_id not in have]
    paid = {payment.fb_id for payment in fetched.payments}
    payments = [p for p in stored_payments_of_vendors(store, renamed) if p.fb_id not in paid]
    return dataclasses.replace(
        fetched, bills=[*fetched.bills, *extra], payments=[*fetched.payments, *payments]
    )


def ingest(
    store: Store,
    fetched: Fetched,
    renderer: Renderer,
    *,
    since: date | None,
    send_payments: bool,
    report_deleted: bool,
    run_id: int | None,
    report: RunReport,
    names: dict[int, str] | None = None,
    skip_bills: Collection[int] = (),
) -> list[Decision]:
    """Observe what was fetched and apply the changes; returns what changed.

    A streamed run passes the same `names` for every slice (kept current by
    `observe`), so the vendor names are read from the state once per run.
    """
    names = vendor_names(store) if names is None else names
    fetched = with_stored_bills(store, fetched, names)
    known = stored_bills(
        store, ids={p.bill_id for p in fetched.payments} - {b.fb_id for b in fetched.bills}
    )
    observed = observe(
        fetched,
        renderer,
        names,
        since=since,
        problems=report.problems,
        known_bills=known,
        skip_bills=skip_bills,
    )
    for kind in Kind:
        report.add(f"seen.{kind.value}", sum(1 for item, _ in observed if item.kind is kind))
    return apply_changes(
        store,
        observed,
        send_payments=send_payments,
        report_deleted=report_deleted,
        run_id=run_id,
        report=report,
    )
