"""The coding lists: FreshBooks' expense categories and taxes, sent before the vendors.

FreshBooks documents no `updated_since` filter for either list, and they change rarely:
each whole list (one request for a usual account) is read at most once per
`sync.coding_lists_hours`, at each full sweep (`--full`), and the categories at once when a
bill line names one not read yet (so a new category goes before the bill coded to it).
Each entry is a source object like a vendor: the same snapshots and hashes decide, so an
unchanged one is never sent again, a renamed or archived one goes as an UPDATE, and one
FreshBooks no longer lists goes as deleted (VOID under `sync.deleted_bills = "void"`). A
login without the list's scope (said once, by the client), or FreshBooks failing, leaves
the list for a later run: it never stops the bills.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from fbstampli.clock import Clock, from_utc_text, to_utc_text
from fbstampli.config import Settings
from fbstampli.errors import RemoteError, RemoteUnavailableError, RenderError
from fbstampli.models import Bill, ExpenseCategory, Kind, SourceObject, Tax, VisState
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.coding import standing_categories, standing_taxes
from fbstampli.sync.ingest import apply_changes
from fbstampli.sync.plan import Observed
from fbstampli.sync.ports import BillSource, Renderer

log = logging.getLogger(__name__)

Entry = ExpenseCategory | Tax


@dataclass(frozen=True, slots=True)
class CodingList:
    """One list: its kind, its words, where its last read is kept, how it is read."""

    kind: Kind
    label: str
    read_key: str  # when it was last asked for (read, or refused to this login)
    read: Callable[[BillSource], Sequence[Entry] | None]
    standing: Callable[[Store], Sequence[Entry]]


CATEGORIES = CodingList(
    Kind.CATEGORY,
    "expense categories",
    "push.categories_read_at",
    lambda source: source.list_expense_categories(),
    standing_categories,
)
TAXES = CodingList(
    Kind.TAX, "taxes", "push.taxes_read_at", lambda source: source.list_taxes(), standing_taxes
)
LISTS = (CATEGORIES, TAXES)
READ_KEY = CATEGORIES.read_key
# The category ids bill lines named that the last read did not find: not asked for again.
ASKED_KEY = "push.categories_unknown"
# What one run read: per list, whether it was asked and what it listed (None: refused).
Read = list[tuple[CodingList, Sequence[Entry] | None]]


def categories_due(
    store: Store, settings: Settings, clock: Clock, *, full: bool, named: Collection[int] = ()
) -> bool:
    return list_due(CATEGORIES, store, settings, clock, full=full, named=named)


def list_due(
    coding: CodingList,
    store: Store,
    settings: Settings,
    clock: Clock,
    *,
    full: bool,
    named: Collection[int] = (),
) -> bool:
    """Never with `sync.coding_lists_hours = 0`; else on a full run, once the interval is up,
    or (categories) when a bill line names one not read yet (created since the last read)."""
    hours = settings.sync.coding_lists_hours
    if hours == 0:
        return False
    if full:
        return True
    last = store.get_value(coding.read_key)
    if last is None or clock.now() - from_utc_text(last) >= timedelta(hours=hours):
        return True
    if coding is not CATEGORIES or not named:
        return False
    return bool(_unknown(store, named) - set(store.get_json(ASKED_KEY) or []))


def categories_named(bills: Sequence[Bill]) -> set[int]:
    """The expense categories these bills' lines are coded to."""
    return {line.category_id for bill in bills for line in bill.lines if line.category_id}


def _unknown(store: Store, named: Collection[int]) -> set[int]:
    return set(named) - {category.fb_id for category in standing_categories(store)}


def refresh_coding_lists(
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
    """Read the lists due and queue what changed (committed before it returns).

    Called once the run's bills are recorded, with no listing open: the deliveries it
    queues go first all the same (the coding lists lead the delivery order).
    """
    read = read_coding_lists(
        store, source, settings=settings, clock=clock, full=full, named=named, report=report
    )
    record_coding_lists(store, read, renderer, settings, clock, named, run_id, report)


def read_coding_lists(
    store: Store,
    source: BillSource,
    *,
    settings: Settings,
    clock: Clock,
    full: bool,
    named: Collection[int],
    report: RunReport,
) -> Read:
    """The lists FreshBooks was asked for, each with what it listed (None when refused).
    Never inside a store transaction: a token refreshed meanwhile must be stored for good."""
    read: Read = []
    for coding in LISTS:
        if not list_due(coding, store, settings, clock, full=full, named=named):
            continue
        try:
            read.append((coding, coding.read(source)))
        except RemoteUnavailableError as error:  # FreshBooks down: the next run asks again
            log.info("%s not read: %s", coding.label, error)
            report.notes.append(f"{coding.label} not read ({error}); the next run tries again")
        except RemoteError as error:  # an answer that will not change soon: asked again later
            log.warning("%s not read: %s; asked again later", coding.label, error)
            read.append((coding, None))
    return read


def record_coding_lists(
    store: Store,
    read: Read,
    renderer: Renderer,
    settings: Settings,
    clock: Clock,
    named: Collection[int],
    run_id: int | None,
    report: RunReport,
) -> None:
    """What was listed, as snapshots and deliveries; when each was asked, and what it lacked."""
    for coding, listed in read:
        if listed is not None:
            _record(store, coding, listed, renderer, settings, run_id, report)
        with store.transaction():
            store.put_value(coding.read_key, to_utc_text(clock.now()))
            if coding is CATEGORIES:  # ids still unknown after this read ask no more
                store.put_json(ASKED_KEY, sorted(_unknown(store, named)) if named else [])


def _record(
    store: Store,
    coding: CodingList,
    listed: Sequence[Entry],
    renderer: Renderer,
    settings: Settings,
    run_id: int | None,
    report: RunReport,
) -> None:
    """Snapshots and deliveries of the entries that changed, the unlisted ones as deleted."""
    ids = {entry.fb_id for entry in listed}
    gone = [
        dataclasses.replace(entry, vis_state=VisState.DELETED)
        for entry in coding.standing(store)
        if entry.fb_id not in ids
    ]
    observed: list[tuple[Observed, SourceObject]] = []
    for entry in [*listed, *gone]:
        try:
            rows = tuple(renderer.rows(entry, {}, {}))
        except RenderError as error:
            report.problems.append(f"{coding.kind.value} {entry.fb_id} cannot be written: {error}")
            continue
        stamp = entry.updated_at
        item = Observed(
            kind=coding.kind,
            fb_id=entry.fb_id,
            content_hash=renderer.version_hash(coding.kind, rows),
            legacy_hash=renderer.legacy_hash(coding.kind, rows),
            vis_state=int(entry.vis_state),
            rows=rows,
            updated_at=stamp.isoformat() if stamp else None,
        )
        observed.append((item, entry))
    report.add(f"seen.{coding.kind.value}", len(observed))
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
