"""Ingest: hash what was fetched from FreshBooks, and record what changed in the outbox.

Order: `sync.fetch` reads first (no state written while FreshBooks is being
read, so a kill during listing loses nothing), then one transaction here writes
the snapshots, the deliveries and the audit rows together. Objects that did
not change cost no write at all.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import (
    Collection,
    Mapping,
    Sequence,
)
from datetime import date

from fbstampli.errors import RenderError
from fbstampli.models import Bill, BillPayment, Kind, SourceObject, kind_of
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
from fbstampli.sync.fetch import Fetched
from fbstampli.sync.plan import Change, Decision, Observed, Snapshot, plan_changes
from fbstampli.sync.ports import Renderer
from fbstampli.sync.versions import lifecycle_audit, versions_to_queue

log = logging.getLogger(__name__)

_VOIDED = "deleted in FreshBooks; sent to Stampli as VOID"
_NOT_VOIDED = "deleted in FreshBooks; not sent to Stampli: cancel it there if needed"


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
        kind = kind_of(obj)
        observed.append(
            (
                Observed(
                    kind=kind,
                    fb_id=obj.fb_id,
                    content_hash=renderer.version_hash(kind, rows),
                    legacy_hash=renderer.legacy_hash(kind, rows),
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
    renderer: Renderer,
    send_payments: bool,
    report_deleted: bool,
    void_deleted: bool = False,
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
    stale = _stale_facts(store, observed, changed) + _upgraded(observed, stored, changed)
    with store.transaction():
        queue = versions_to_queue(
            store, renderer, decisions, send_payments=send_payments, void_deleted=void_deleted
        )
        _apply(store, decisions, by_key, queue, report_deleted, run_id, report)
        lifecycle = lifecycle_audit(store.now_text(), run_id, decisions, stored)
        if lifecycle:
            store.audit_many(lifecycle)
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


def _upgraded(
    observed: list[tuple[Observed, SourceObject]],
    stored: Mapping[tuple[Kind, int], Snapshot],
    changed: set[tuple[Kind, int]],
) -> list[tuple[Observed, SourceObject]]:
    """Unchanged objects whose snapshot an earlier release hashed: it takes the new hash."""
    return [
        (item, obj)
        for item, obj in observed
        if (item.kind, item.fb_id) not in changed
        and (known := stored.get((item.kind, item.fb_id))) is not None
        and known.content_hash != item.content_hash
        and known.content_hash == item.legacy_hash
    ]


def _apply(
    store: Store,
    decisions: Sequence[Decision],
    by_key: dict[tuple[Kind, int], SourceObject],
    queue: Sequence[tuple[Decision, Queued]],
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
    queued = queue_deliveries(store, [version for _, version in queue])
    was_queued = {id(d): q for (d, _), q in zip(queue, queued, strict=True)}
    audit = _audit_rows(store.now_text(), decisions, was_queued, report_deleted, run_id, report)
    if audit:
        store.audit_many(audit)


def _audit_rows(
    now: str,
    decisions: Sequence[Decision],
    was_queued: Mapping[int, bool],
    report_deleted: bool,
    run_id: int | None,
    report: RunReport,
) -> list[tuple[object, ...]]:
    """An audit row for each delivery queued and each deletion reported, in decision order."""
    audit: list[tuple[object, ...]] = []
    for decision in decisions:
        item = decision.observed
        if decision.change is Change.DELETED:
            if report_deleted or was_queued.get(id(decision)):
                audit.append(
                    (
                        now,
                        run_id,
                        item.kind.value,
                        item.fb_id,
                        "deleted_in_freshbooks",
                        _VOIDED if was_queued.get(id(decision)) else _NOT_VOIDED,
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
    return audit


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
    void_deleted: bool = False,
    names: dict[int, str] | None = None,
    skip_bills: Collection[int] = (),
) -> list[Decision]:
    """Observe what was fetched and apply the changes; returns what changed.

    A streamed run passes the same `names` for every slice (kept current by
    `observe`), so the vendor names are read from the state once per run.
    """
    names = vendor_names(store) if names is None else names
    if renderer.resends_on_rename:
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
        renderer=renderer,
        send_payments=send_payments,
        void_deleted=void_deleted,
        report_deleted=report_deleted,
        run_id=run_id,
        report=report,
    )
