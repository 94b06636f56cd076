"""Ingest: read FreshBooks, hash what it has, and queue what changed into the outbox.

Order: fetch everything first (no state written while FreshBooks is being
read, so a kill during listing loses nothing), then one transaction writes
the snapshots, the deliveries and the audit rows together. Objects that did
not change cost no write at all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any

from fbstampli.errors import RenderError
from fbstampli.models import Bill, BillPayment, Kind, SourceObject, Vendor, VisState, kind_of
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.outbox import load_snapshots, queue_delivery, save_snapshot, vendor_names
from fbstampli.sync.plan import Change, Decision, Observed, Snapshot, plan_changes
from fbstampli.sync.ports import BillSource, Renderer

log = logging.getLogger(__name__)

Advance = Callable[[int], None]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def payload_of(obj: SourceObject) -> str:
    """A JSON copy of the object for the audit trail and reconciliation."""
    return json.dumps(
        dataclasses.asdict(obj, dict_factory=lambda items: {k: _plain(v) for k, v in items}),
        sort_keys=True,
        default=str,
    )


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
) -> list[tuple[Observed, SourceObject]]:
    """Render and hash every fetched object, leaving out bills before `since` and their payments."""
    for vendor in fetched.vendors:
        names[vendor.fb_id] = vendor.name
    skipped_bills = {bill.fb_id for bill in fetched.bills if since and bill.issue_date < since}
    bills = {bill.fb_id: bill for bill in fetched.bills}
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
) -> None:
    """Write snapshots and queue deliveries for what changed, in one transaction."""
    stored = {key: Snapshot(*value) for key, value in load_snapshots(store).items()}
    by_key = {(item.kind, item.fb_id): obj for item, obj in observed}
    decisions = plan_changes((item for item, _ in observed), stored)
    with store.transaction():
        for decision in decisions:
            _apply(store, decision, by_key, send_payments, report_deleted, run_id, report)
    report.add("unchanged", len(observed) - len(decisions))


def _apply(
    store: Store,
    decision: Decision,
    by_key: dict[tuple[Kind, int], SourceObject],
    send_payments: bool,
    report_deleted: bool,
    run_id: int | None,
    report: RunReport,
) -> None:
    item = decision.observed
    save_snapshot(
        store,
        kind=item.kind,
        fb_id=item.fb_id,
        updated_at=item.updated_at,
        vis_state=item.vis_state,
        content_hash=item.content_hash,
        payload=payload_of(by_key[(item.kind, item.fb_id)]),
    )
    if decision.change is Change.DELETED:
        if report_deleted:
            store.audit(
                "deleted_in_freshbooks",
                kind=item.kind.value,
                fb_id=item.fb_id,
                detail="deleted in FreshBooks; Stampli has no delete: cancel it there if needed",
                run_id=run_id,
            )
            report.add("deleted")
            report.notes.append(f"{item.kind.value} {item.fb_id} was deleted in FreshBooks")
        return
    if item.kind is Kind.PAYMENT and not send_payments:
        return
    delivery = queue_delivery(
        store, kind=item.kind, fb_id=item.fb_id, content_hash=item.content_hash, rows=item.rows
    )
    if delivery is not None:
        store.audit(
            f"queued_{decision.change.value}",
            kind=item.kind.value,
            fb_id=item.fb_id,
            detail=f"version {item.content_hash[:12]}",
            run_id=run_id,
        )
        report.add(f"queued.{item.kind.value}")


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
) -> None:
    names = vendor_names(store)
    observed = observe(fetched, renderer, names, since=since, problems=report.problems)
    for kind in Kind:
        report.add(f"seen.{kind.value}", sum(1 for item, _ in observed if item.kind is kind))
    apply_changes(
        store,
        observed,
        send_payments=send_payments,
        report_deleted=report_deleted,
        run_id=run_id,
        report=report,
    )
