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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from fbstampli.atomic import write_atomic
from fbstampli.clock import Clock, from_utc_text, to_utc_text
from fbstampli.config import Settings
from fbstampli.errors import ConfigError
from fbstampli.freshbooks.behaviour import (
    NEW_YORK,
    VENDOR_TIMES,
    Learnt,
    as_wall_clock_utc,
    judge_vendor_times,
)
from fbstampli.models import Kind
from fbstampli.paths import private_folder
from fbstampli.report import RunReport
from fbstampli.store import Store, outbox
from fbstampli.store.api_facts import event_arrivals, load_facts, save_fact
from fbstampli.store.events import mark_events, pending_events
from fbstampli.store.outbox import vendor_names
from fbstampli.sync.connection import Connection
from fbstampli.sync.deliver import create_batches, deliver
from fbstampli.sync.ingest import (
    Fetched,
    SortExtremes,
    check_sort,
    check_sort_extremes,
    fetch_all,
    fetch_all_chunks,
    fetch_ids,
    fetch_recent,
    ingest,
    next_watermarks,
    sort_extremes,
    with_lines,
    with_named,
)
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

log = logging.getLogger(__name__)

SINCE_KEY = "push.since"
# When a push last finished reading FreshBooks (a whole listing or the incremental pass):
# how fresh the snapshots reconcile reads are, whatever became of the uploads after.
READ_AT_KEY = "push.read_at"
WATERMARK_KEYS = {Kind.VENDOR: "push.watermark.vendor", Kind.BILL: "push.watermark.bill"}


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


class _DryRunDone(Exception):
    """Raised to roll back a dry run's transaction after its files are written."""


def parse_since(text: str | None, store: Store) -> date | None:
    """`--since` is remembered, so later runs keep leaving older bills out."""
    if text:
        try:
            since = date.fromisoformat(text)
        except ValueError:
            raise ConfigError(f"--since {text!r}: expected a date like 2026-01-31") from None
        with store.transaction():
            store.put_value(SINCE_KEY, since.isoformat())
        return since
    stored = store.get_value(SINCE_KEY)
    return date.fromisoformat(stored) if stored else None


def sweep_due(ctx: PushContext, *, full: bool, first_run: bool) -> bool:
    """A full sweep (deleted objects too) on request, or when the last is old enough.

    The very first run has nothing to sweep for: a deletion only matters for
    an object we have sent, and nothing has been sent yet.
    """
    if first_run:
        return False
    if full:
        return True
    last = ctx.store.get_value(SWEEP_KEY)
    if last is None:
        return True
    age = ctx.clock.now() - from_utc_text(last)
    return age >= timedelta(hours=ctx.settings.sync.full_sweep_hours)


def load_watermarks(store: Store) -> dict[Kind, datetime]:
    marks: dict[Kind, datetime] = {}
    for kind, key in WATERMARK_KEYS.items():
        text = store.get_value(key)
        if text:
            marks[kind] = datetime.fromisoformat(text)
    return marks


def save_watermarks(store: Store, marks: dict[Kind, datetime]) -> None:
    for kind, mark in marks.items():
        store.put_value(WATERMARK_KEYS[kind], mark.isoformat())


def push(
    ctx: PushContext,
    *,
    full: bool = False,
    since: str | None = None,
    dry_run_folder: Path | None = None,
    only_events: bool = False,
    advance: Callable[[int], None] = lambda amount: None,
    stage: Callable[[str], Callable[[int], object]] = lambda label: lambda amount: None,
) -> RunReport:
    """One push run. `only_events` fetches just what webhooks named (the listener's fast path)."""
    report = RunReport("push-bills")
    since_date = parse_since(since, ctx.store)
    events = pending_events(ctx.store)
    first_run = not outbox.has_snapshots(ctx.store)
    sweep = sweep_due(ctx, full=full, first_run=first_run) and not only_events
    watermarks = load_watermarks(ctx.store)
    source = ctx.source()
    bill_ids = sorted({oid for _, name, oid in events if name.startswith("bill.")})
    vendor_ids = sorted({oid for _, name, oid in events if name.startswith("bill_vendor.")})
    follow = follows_bills(ctx.store)
    whole = sweep or first_run or len(watermarks) < len(WATERMARK_KEYS)
    if whole and not only_events and dry_run_folder is None:
        started = ctx.clock.now()
        streamed = _stream(ctx, source, sweep=sweep, follow=follow, since=since_date,
                           watermarks=watermarks, vendor_ids=vendor_ids, advance=advance,
                           report=report)  # fmt: skip
        swept_at = started if sweep or first_run else None
        return _finish(ctx, events, streamed, swept_at, report, stage=stage)
    if only_events:
        fetched = fetch_ids(source, bill_ids=bill_ids, vendor_ids=vendor_ids)
        fetched = with_payments_of_moved(ctx.store, source, fetched, report)
    elif whole:  # a dry run: everything in one transaction, rolled back
        fetched = fetch_all(source, include_deleted=sweep, advance=advance)
        check_sort(source, fetched)
    else:
        fetched = fetch_recent(source, watermarks=watermarks, advance=advance, payments=not follow)
        fetched = with_named(source, fetched, bill_ids=bill_ids, vendor_ids=vendor_ids)
        if follow:
            fetched = with_payments_of_moved(ctx.store, source, fetched, report)
    fetched = with_lines(ctx.store, source, fetched, report)
    learn_vendor_times(ctx, fetched, vendor_ids)

    if dry_run_folder is not None:
        return _dry_run(ctx, fetched, since_date, dry_run_folder, report)

    _ingest(ctx, fetched, since_date, ctx.run_id, report)
    marks = None if only_events else next_watermarks(fetched, watermarks)
    return _finish(ctx, events, marks, None, report, stage=stage)


def _stream(
    ctx: PushContext,
    source: BillSource,
    *,
    sweep: bool,
    follow: bool,
    since: date | None,
    watermarks: dict[Kind, datetime],
    vendor_ids: list[int],
    advance: Callable[[int], None],
    report: RunReport,
) -> dict[Kind, datetime]:
    """List everything a slice at a time, each slice ingested and committed before the next.

    Memory follows the slice, not the account. A kill half way leaves committed
    slices whose deliveries are queued with their snapshots (nothing lost, nothing
    queued twice) and neither the sweep nor the watermarks recorded, so the next
    run lists everything again. A sweep also checks the payments fast path, and
    every whole listing FreshBooks' sort (from the newest and oldest it saw).
    """
    names = vendor_names(ctx.store)
    skipped: set[int] = set()
    moved: set[int] = set()
    missed: list[int] = []
    marks = dict(watermarks)
    check = sweep and follow
    extremes: SortExtremes = {}
    # Closed at once when a slice fails, so the listing read ahead stops with it. While it
    # is open, never call FreshBooks inside a store transaction: the worker may hold the
    # client's lock and wait for the store's to save a refreshed token, the two locks the
    # other way round (with_lines below calls FreshBooks outside any transaction).
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


def _finish(
    ctx: PushContext,
    events: list[tuple[int, str, int]],
    marks: dict[Kind, datetime] | None,
    swept_at: datetime | None,
    report: RunReport,
    *,
    stage: Callable[[str], Callable[[int], object]],
) -> RunReport:
    """Record the run (events done, sweep time, watermarks) in one transaction, then deliver."""
    with ctx.store.transaction():
        mark_events(ctx.store, [event_id for event_id, _, _ in events])
        if swept_at is not None:
            ctx.store.put_value(SWEEP_KEY, to_utc_text(swept_at))
        if marks is not None:
            save_watermarks(ctx.store, marks)
            ctx.store.put_value(READ_AT_KEY, to_utc_text(ctx.clock.now()))
    report.add("events", len(events))
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
    )
    return report


def learn_vendor_times(ctx: PushContext, fetched: Fetched, vendor_ids: list[int]) -> None:
    """Tell the zone of vendor times from vendors webhooks just named (`judge_vendor_times`).

    What is learnt applies from the next run on; the default template renders no
    vendor time, and the vendor watermark only moves later when read as New York.
    """
    if not vendor_ids:
        return
    arrivals = event_arrivals(ctx.store, "bill_vendor.", vendor_ids)
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
    return ingest(
        ctx.store,
        fetched,
        ctx.renderer,
        names=names,
        skip_bills=skip or (),
        since=since,
        send_payments=ctx.settings.sync.send_payments,
        report_deleted=ctx.settings.sync.deleted_bills == "report",
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
    try:
        with ctx.store.transaction():
            _ingest(ctx, fetched, since_date, None, report)
            for kind in Kind:
                for batch_id in create_batches(
                    ctx.store,
                    kind,
                    ctx.renderer,
                    settings=ctx.settings,
                    business=ctx.business,
                    clock=ctx.clock,
                    run_id=None,
                ):
                    row = outbox.batch(ctx.store, batch_id)
                    if row is not None:
                        write_atomic(folder / row["file_name"], bytes(row["content"]))
                        report.add(f"files.{kind.value}")
                        report.notes.append(f"would upload {row['file_name']}")
            raise _DryRunDone
    except _DryRunDone:
        pass
    report.notes.append(f"dry run: files written to {folder}; nothing uploaded, nothing recorded")
    return report
