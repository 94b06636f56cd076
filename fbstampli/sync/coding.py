"""The coding list: FreshBooks' expense categories, sent to Stampli before the vendors.

FreshBooks documents no `updated_since` filter for expense categories, and they change
rarely: the whole list (one request for a usual account) is read at most once per
`sync.categories_hours`, at each full sweep (`--full`), and at once when a bill line
names a category not read yet (so a new category goes before the bill coded to it).
Each category is a source object like a vendor: the same snapshots and hashes decide,
so an unchanged category is never sent again, a renamed or archived one goes as an
UPDATE, and one FreshBooks no longer lists goes as deleted (VOID under
`sync.deleted_bills = "void"`). A login without `user:expenses:read` (said once, by the
client), or FreshBooks failing, leaves the list for a later run: it never stops the bills.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection
from datetime import timedelta

from fbstampli.clock import Clock, from_utc_text, to_utc_text
from fbstampli.config import Settings
from fbstampli.errors import RemoteError, RemoteUnavailableError, RenderError
from fbstampli.models import ExpenseCategory, Kind, SourceObject, VisState
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.coding import standing_categories
from fbstampli.sync.ingest import apply_changes
from fbstampli.sync.plan import Observed
from fbstampli.sync.ports import BillSource, Renderer

log = logging.getLogger(__name__)

# When the expense categories were last asked for (read, or refused to this login).
READ_KEY = "push.categories_read_at"
# The category ids bill lines named that the last read did not find: not asked for again.
ASKED_KEY = "push.categories_unknown"


def categories_due(
    store: Store, settings: Settings, clock: Clock, *, full: bool, named: Collection[int] = ()
) -> bool:
    """Never with `sync.categories_hours = 0`; else on a full run, once the interval is up,
    or when a bill line names a category not read yet (created since the last read)."""
    hours = settings.sync.categories_hours
    if hours == 0:
        return False
    if full:
        return True
    last = store.get_value(READ_KEY)
    if last is None or clock.now() - from_utc_text(last) >= timedelta(hours=hours):
        return True
    if not named:
        return False
    return bool(_unknown(store, named) - set(store.get_json(ASKED_KEY) or []))


def _unknown(store: Store, named: Collection[int]) -> set[int]:
    return set(named) - {category.fb_id for category in standing_categories(store)}


def refresh_categories(
    store: Store,
    source: BillSource,
    renderer: Renderer,
    *,
    settings: Settings,
    clock: Clock,
    full: bool,
    run_id: int | None,
    report: RunReport,
    named: Collection[int] = (),
) -> None:
    """Read the categories when due and queue what changed (committed before it returns).

    Called once the run's bills are recorded, with no listing open: the deliveries it
    queues go first all the same (`Kind.CATEGORY` leads the delivery order).
    """
    asked, listed = read_categories(
        store, source, settings=settings, clock=clock, full=full, named=named, report=report
    )
    if asked:
        record_categories(store, listed, renderer, settings, clock, named, run_id, report)


def read_categories(
    store: Store,
    source: BillSource,
    *,
    settings: Settings,
    clock: Clock,
    full: bool,
    named: Collection[int],
    report: RunReport,
) -> tuple[bool, list[ExpenseCategory] | None]:
    """(whether FreshBooks was asked, what it listed: None when refused). Never inside a
    store transaction: a token refreshed meanwhile must be stored for good."""
    if not categories_due(store, settings, clock, full=full, named=named):
        return False, None
    try:
        return True, source.list_expense_categories()
    except RemoteUnavailableError as error:  # FreshBooks down: the next run asks again
        log.info("expense categories not read: %s", error)
        report.notes.append(f"expense categories not read ({error}); the next run tries again")
        return False, None
    except RemoteError as error:  # an answer that will not change soon: asked again later
        log.warning("expense categories not read: %s; asked again in sync.categories_hours", error)
        return True, None


def record_categories(
    store: Store,
    listed: list[ExpenseCategory] | None,
    renderer: Renderer,
    settings: Settings,
    clock: Clock,
    named: Collection[int],
    run_id: int | None,
    report: RunReport,
) -> None:
    """What was listed, as snapshots and deliveries; when it was asked, and what it lacked."""
    if listed is not None:
        _record(store, listed, renderer, settings, run_id, report)
    with store.transaction():
        store.put_value(READ_KEY, to_utc_text(clock.now()))
        # Ids still unknown after this read (a deleted category on old bills) ask no more.
        store.put_json(ASKED_KEY, sorted(_unknown(store, named)) if named else [])


def _record(
    store: Store,
    listed: list[ExpenseCategory],
    renderer: Renderer,
    settings: Settings,
    run_id: int | None,
    report: RunReport,
) -> None:
    """Snapshots and deliveries of the categories that changed, the unlisted ones as deleted."""
    ids = {category.fb_id for category in listed}
    gone = [
        dataclasses.replace(category, vis_state=VisState.DELETED)
        for category in standing_categories(store)
        if category.fb_id not in ids
    ]
    observed: list[tuple[Observed, SourceObject]] = []
    for category in [*listed, *gone]:
        try:
            rows = tuple(renderer.rows(category, {}, {}))
        except RenderError as error:
            report.problems.append(f"expense category {category.fb_id} cannot be written: {error}")
            continue
        stamp = category.updated_at
        item = Observed(
            kind=Kind.CATEGORY,
            fb_id=category.fb_id,
            content_hash=renderer.version_hash(Kind.CATEGORY, rows),
            legacy_hash=renderer.legacy_hash(Kind.CATEGORY, rows),
            vis_state=int(category.vis_state),
            rows=rows,
            updated_at=stamp.isoformat() if stamp else None,
        )
        observed.append((item, category))
    report.add(f"seen.{Kind.CATEGORY.value}", len(observed))
    apply_changes(
        store,
        observed,
        renderer=renderer,
        send_payments=settings.sync.send_payments,
        report_deleted=settings.sync.deleted_bills != "ignore",
        void_deleted=settings.sync.deleted_bills == "void",
        run_id=run_id,
        report=report,
    )
