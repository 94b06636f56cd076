"""push-bills: FreshBooks -> outbox -> Stampli inbound, as one resumable run.

The steps are ordered so that a kill at any instant is harmless: webhook
events are marked processed only after the objects they named are in the
outbox, a full sweep is recorded only after its snapshots are committed, and
delivery resumes every interrupted batch before planning new ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from fbstampli.clock import Clock, to_utc_text
from fbstampli.config import Settings
from fbstampli.models import BILL_EVENTS, VENDOR_EVENTS, Kind, event_resource
from fbstampli.models.behaviour import (
    NEW_YORK,
    VENDOR_TIMES,
    Learnt,
    as_wall_clock_utc,
    judge_vendor_times,
)
from fbstampli.paths import private_folder
from fbstampli.report import RunReport
from fbstampli.store import Store, outbox
from fbstampli.store.api_facts import event_arrivals, load_facts, save_fact
from fbstampli.store.events import mark_events, pending_events
from fbstampli.store.outbox import vendor_names
from fbstampli.sync.coding import (
    categories_named,
    read_coding_lists,
    record_coding_lists,
    refresh_coding_lists,
)
from fbstampli.sync.connection import Connection
from fbstampli.sync.deliver import deliver
from fbstampli.sync.documents import with_documents
from fbstampli.sync.dry_run import write_planned_files
from fbstampli.sync.fetch import (
    Fetched,
    SortExtremes,
    check_sort,
    check_sort_extremes,
    fetch_all,
    fetch_all_chunks,
    fetch_ids,
    fetch_recent,
    next_watermarks,
    sort_extremes,
    with_lines,
    with_named,
)
from fbstampli.sync.ingest import ingest
from fbstampli.sync.payments import (
    SWEEP_KEY,
    follows_bills,
    missed_payments,
    moved_bills,
    report_missed,
    with_payments_of_moved,
)
from fbstampli.sync.plan import Decision
from fbstampli.sync.ports import BillSource, Renderer, Transport
from fbstampli.sync.vanished import with_deleted_payments
from fbstampli.sync.watermarks import (
    WATERMARK_KEYS,
    load_watermarks,
    parse_since,
    save_watermarks,
    sweep_due,
)
from fbstampli.sync.zips import document_limit

log = logging.getLogger(__name__)

# When a push last finished reading FreshBooks (a whole listing or the incremental pass):
# how fresh the snapshots reconcile reads are, whatever became of the uploads after.
READ_AT_KEY = "push.read_at"


@dataclass(slots=True)
class PushContext:
    store: Store
    settings: Settings
    clock: Clock
    source: Callable[[], BillSource]
    transport: Callable[[], Transport]
    renderer: Renderer
    business: str
    run_id: int | None = None
    documents: Path | None = None  # where bills' documents wait; None: documents not fetched
    # Categories the bill lines name: an unknown one is read at once, to go before its bill.
    named_categories: set[int] = field(default_factory=set)
    deliver: bool = True  # False: read and queue only (`state adopt-remote`)


class _DryRunDone(Exception):
    """Raised to roll back a dry run's transaction after its files are written."""


Stage = Callable[[str], Callable[[int], object]]


@dataclass(slots=True)
class PushRun:
    """What a push knows before it reads FreshBooks: the events waiting, where the last
    run stopped, and whether this one lists everything."""

    report: RunReport
    since: date | None
    events: list[tuple[int, str, int]]
    watermarks: dict[Kind, datetime]
    first_run: bool
    sweep: bool
    follow: bool
    source: BillSource

    @property
    def whole(self) -> bool:
        """Everything is listed: a sweep, the first run, or a watermark not yet known."""
        return self.sweep or self.first_run or len(self.watermarks) < len(WATERMARK_KEYS)

    @property
    def bill_ids(self) -> list[int]:
        return self._named(BILL_EVENTS)

    @property
    def vendor_ids(self) -> list[int]:
        return self._named(VENDOR_EVENTS)

    def _named(self, resource: str) -> list[int]:
        return sorted({oid for _, name, oid in self.events if event_resource(name) == resource})


def push(
    ctx: PushContext,
    *,
    full: bool = False,
    since: str | None = None,
    dry_run_folder: Path | None = None,
    only_events: bool = False,
    advance: Callable[[int], None] = lambda amount: None,
    stage: Stage = lambda label: lambda amount: None,
) -> RunReport:
    """One push run, in the mode its arguments name. `only_events` fetches just what
    webhooks named (the listener's fast path)."""
    run = start_run(ctx, full=full, since=since, only_events=only_events)
    if dry_run_folder is not None:
        return push_dry_run(ctx, run, dry_run_folder, only_events=only_events, advance=advance)
    if only_events:
        return push_events(ctx, run, stage=stage)
    if run.whole:
        return push_whole(ctx, run, advance=advance, stage=stage)
    return push_incremental(ctx, run, advance=advance, stage=stage)


def start_run(ctx: PushContext, *, full: bool, since: str | None, only_events: bool) -> PushRun:
    since_date = parse_since(since, ctx.store)
    first_run = not outbox.has_snapshots(ctx.store)
    return PushRun(
        report=RunReport("push-bills"),
        since=since_date,
        events=pending_events(ctx.store),
        watermarks=load_watermarks(ctx.store),
        first_run=first_run,
        sweep=sweep_due(ctx.store, ctx.settings, ctx.clock, full=full, first_run=first_run)
        and not only_events,
        follow=follows_bills(ctx.store),
        source=ctx.source(),
    )


def push_events(ctx: PushContext, run: PushRun, *, stage: Stage) -> RunReport:
    """The webhook fast path: only the objects the waiting events named; no watermark moves."""
    fetched = _completed(ctx, run, _fetch_named(ctx, run))
    _ingest(ctx, fetched, run.since, ctx.run_id, run.report)
    return record_and_deliver(ctx, run, marks=None, swept_at=None, stage=stage)


def push_incremental(
    ctx: PushContext, run: PushRun, *, advance: Callable[[int], None], stage: Stage
) -> RunReport:
    """What changed since the watermarks, with what the events named, then the watermarks move."""
    fetched = _completed(ctx, run, _fetch_recent(ctx, run, advance))
    _ingest(ctx, fetched, run.since, ctx.run_id, run.report)
    marks = next_watermarks(fetched, run.watermarks)
    _coding(ctx, run)
    return record_and_deliver(ctx, run, marks=marks, swept_at=None, stage=stage)


def push_whole(
    ctx: PushContext, run: PushRun, *, advance: Callable[[int], None], stage: Stage
) -> RunReport:
    """Everything listed a slice at a time (`_stream`), the sweep recorded once it is whole."""
    started = ctx.clock.now()
    marks = _stream(ctx, run, advance=advance)
    swept_at = started if run.sweep or run.first_run else None
    _coding(ctx, run)
    return record_and_deliver(ctx, run, marks=marks, swept_at=swept_at, stage=stage)


def push_dry_run(
    ctx: PushContext,
    run: PushRun,
    folder: Path,
    *,
    only_events: bool,
    advance: Callable[[int], None],
) -> RunReport:
    """Read as the matching real run would, held whole; plan and write files, record nothing."""
    if only_events:
        fetched = _fetch_named(ctx, run)
    elif run.whole:
        fetched = fetch_all(run.source, include_deleted=run.sweep, advance=advance)
        check_sort(run.source, fetched)
    else:
        fetched = _fetch_recent(ctx, run, advance)
    return _dry_run(ctx, _completed(ctx, run, fetched), run.since, folder, run.report)


def _coding(ctx: PushContext, run: PushRun) -> None:
    """The coding lists when due (`sync/coding.py`); a sweep reads them too."""
    refresh_coding_lists(
        ctx.store,
        run.source,
        ctx.renderer,
        settings=ctx.settings,
        clock=ctx.clock,
        full=run.sweep,
        run_id=ctx.run_id,
        report=run.report,
        named=ctx.named_categories,
    )


def _fetch_named(ctx: PushContext, run: PushRun) -> Fetched:
    fetched = fetch_ids(run.source, bill_ids=run.bill_ids, vendor_ids=run.vendor_ids)
    return with_payments_of_moved(ctx.store, run.source, fetched, run.report)


def _fetch_recent(ctx: PushContext, run: PushRun, advance: Callable[[int], None]) -> Fetched:
    source = run.source
    fetched = fetch_recent(
        source, watermarks=run.watermarks, advance=advance, payments=not run.follow
    )
    fetched = with_named(source, fetched, bill_ids=run.bill_ids, vendor_ids=run.vendor_ids)
    if run.follow:
        fetched = with_payments_of_moved(ctx.store, source, fetched, run.report)
    else:  # every payment was listed: those missing are looked up among the deleted
        fetched = with_deleted_payments(ctx.store, source, fetched)
    return fetched


def _completed(ctx: PushContext, run: PushRun, fetched: Fetched) -> Fetched:
    """Bills given their lines, and the vendor times judged, before anything is recorded."""
    fetched = with_lines(ctx.store, run.source, fetched, run.report)
    learn_vendor_times(ctx, fetched, run.vendor_ids)
    return fetched


def _stream(
    ctx: PushContext, run: PushRun, *, advance: Callable[[int], None]
) -> dict[Kind, datetime]:
    """List everything a slice at a time, each slice ingested and committed before the next.

    Memory follows the slice, not the account. A kill half way leaves committed
    slices whose deliveries are queued with their snapshots (nothing lost, nothing
    queued twice) and neither the sweep nor the watermarks recorded, so the next
    run lists everything again. A sweep also checks the payments fast path, and
    every whole listing FreshBooks' sort (from the newest and oldest it saw).
    """
    source, since, report, vendor_ids = run.source, run.since, run.report, run.vendor_ids
    sweep, follow = run.sweep, run.follow
    names = vendor_names(ctx.store)
    skipped: set[int] = set()
    moved: set[int] = set()
    missed: list[int] = []
    marks = dict(run.watermarks)
    check = sweep and follow
    extremes: SortExtremes = {}
    # Closed at once when a slice fails, so the listing read ahead stops with it. While it
    # is open, never call FreshBooks inside a store transaction: the worker may hold the
    # client's lock and wait for the store's to save a refreshed token, the two locks the
    # other way round (with_lines below calls FreshBooks outside any transaction). A token
    # is the one thing the worker writes: a refreshed pair must be stored before it is used
    # (FreshBooks rotates the refresh token); what it learns is kept for the caller.
    with closing(fetch_all_chunks(source, include_deleted=sweep, advance=advance)) as listing:
        for listed in listing:
            chunk = with_lines(ctx.store, source, listed, report)
            learn_vendor_times(ctx, chunk, vendor_ids)
            extremes = sort_extremes(chunk, extremes)
            if since is not None:
                skipped.update(bill.fb_id for bill in chunk.bills if bill.issue_date < since)
            if check and chunk.bills:
                moved |= moved_bills(ctx.store, chunk.bills)
            decisions = _ingest(ctx, chunk, since, ctx.run_id, report, names=names, skip=skipped)
            if check and chunk.payments:
                missed += missed_payments(ctx.store, chunk, moved, decisions)
            marks = next_watermarks(chunk, marks)
    report_missed(ctx.store, missed, report)
    check_sort_extremes(source, extremes)
    return marks


def record_and_deliver(
    ctx: PushContext,
    run: PushRun,
    *,
    marks: dict[Kind, datetime] | None,
    swept_at: datetime | None,
    stage: Stage,
) -> RunReport:
    """The step every mode ends with: record the run (events done, sweep time, watermarks)
    in one transaction, only once what it read is committed, then deliver the outbox."""
    events, report = run.events, run.report
    with ctx.store.transaction():
        mark_events(ctx.store, [event_id for event_id, _, _ in events])
        if swept_at is not None:
            ctx.store.put_value(SWEEP_KEY, to_utc_text(swept_at))
        if marks is not None:
            save_watermarks(ctx.store, marks)
            ctx.store.put_value(READ_AT_KEY, to_utc_text(ctx.clock.now()))
    report.add("events", len(events))
    if not ctx.deliver:
        return report
    uploaded = stage("Uploading files to Stampli")
    deliver(
        ctx.store,
        Connection(ctx.transport),
        ctx.renderer,
        settings=ctx.settings,
        business=ctx.business,
        clock=ctx.clock,
        run_id=ctx.run_id,
        report=report,
        on_file=uploaded,
        documents=ctx.documents,
    )
    return report


def learn_vendor_times(ctx: PushContext, fetched: Fetched, vendor_ids: list[int]) -> None:
    """Tell the zone of vendor times from vendors webhooks just named (`judge_vendor_times`).

    What is learnt applies from the next run on; the default template renders no
    vendor time, and the vendor watermark only moves later when read as New York.
    """
    if not vendor_ids:
        return
    arrivals = event_arrivals(ctx.store, f"{VENDOR_EVENTS}.", vendor_ids)
    learnt = Learnt(
        load_facts(ctx.store),
        now=ctx.clock.now,
        on_learn=lambda name, fact: save_fact(ctx.store, name, fact),
    )
    zone = NEW_YORK if learnt.value(VENDOR_TIMES) == "America/New_York" else UTC
    pairs = [
        (as_wall_clock_utc(vendor.updated_at, zone), max(arrivals[vendor.fb_id]))
        for vendor in fetched.vendors
        if vendor.fb_id in arrivals and vendor.updated_at is not None
    ]
    verdict = judge_vendor_times(pairs)
    if verdict is not None and not learnt.stands(VENDOR_TIMES, verdict):
        learnt.learn(VENDOR_TIMES, verdict, "a vendor's updated_at beside its webhook's arrival")


def _ingest(
    ctx: PushContext,
    fetched: Fetched,
    since: date | None,
    run_id: int | None,
    report: RunReport,
    *,
    names: dict[int, str] | None = None,
    skip: set[int] | None = None,
) -> list[Decision]:
    ctx.named_categories.update(categories_named(fetched.bills))
    if ctx.documents is not None:
        fetched = with_documents(
            ctx.store,
            ctx.source(),
            fetched,
            ctx.documents,
            max_bytes=document_limit(
                ctx.settings.sync.document_max_mb * 1024 * 1024, ctx.renderer.zip_limit
            ),
            report=report,
        )
    return ingest(
        ctx.store,
        fetched,
        ctx.renderer,
        names=names,
        skip_bills=skip or (),
        since=since,
        send_payments=ctx.settings.sync.send_payments,
        report_deleted=ctx.settings.sync.deleted_bills != "ignore",
        void_deleted=ctx.settings.sync.deleted_bills == "void",
        run_id=run_id,
        report=report,
    )


def _dry_run(
    ctx: PushContext,
    fetched: Fetched,
    since_date: date | None,
    folder: Path,
    report: RunReport,
) -> RunReport:
    """Plan and render as a real run would, write the files locally, then roll everything back."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    private_folder(folder.parent, folder.name)  # never through a link planted as `dry-run/`
    named = categories_named(fetched.bills)
    read = read_coding_lists(  # outside the transaction rolled back below
        ctx.store,
        ctx.source(),
        settings=ctx.settings,
        clock=ctx.clock,
        full=False,
        named=named,
        report=report,
    )
    try:
        with ctx.store.transaction():
            _ingest(ctx, fetched, since_date, None, report)
            record_coding_lists(
                ctx.store, read, ctx.renderer, ctx.settings, ctx.clock, named, None, report
            )
            write_planned_files(
                ctx.store,
                ctx.renderer,
                settings=ctx.settings,
                business=ctx.business,
                clock=ctx.clock,
                folder=folder,
                report=report,
            )
            raise _DryRunDone
    except _DryRunDone:
        pass
    report.notes.append(f"dry run: files written to {folder}; nothing uploaded, nothing recorded")
    return report
