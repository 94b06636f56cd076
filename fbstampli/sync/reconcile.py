"""reconcile: fresh FreshBooks facts against the stored Stampli records, one outcome per bill.

The rules live in `sync/matching.py` (pure); this module gathers their
inputs from FreshBooks and the store, and commits the results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from fbstampli.config import ReconcileSettings
from fbstampli.models import Kind, VisState
from fbstampli.report import RunReport
from fbstampli.store import Store, outbox, reconciliations
from fbstampli.sync import matching
from fbstampli.sync.matching import BillFacts, Money, StampliFacts
from fbstampli.sync.ports import BillSource

# A payment Stampli later reports with one of these statuses no longer counts as paid.
VOID_STATUSES = frozenset({"void", "voided", "cancelled", "canceled", "reversed", "failed"})


def stampli_facts(
    store: Store, bills: Mapping[int, BillFacts]
) -> tuple[dict[int, StampliFacts], list[tuple[str, int | None]]]:
    """What Stampli's stored exports say per bill; rows naming no FreshBooks bill go apart.

    The approval that counts is the latest by its own time (exports can
    arrive out of order), by arrival when a row carries no time. A payment
    exported twice (same payment id) counts once, the later row winning; one
    later reported void no longer counts. A payment without a currency is in
    its bill's currency.
    """
    captured: set[int] = set()
    approval: dict[int, tuple[str, datetime | None]] = {}
    invoice: dict[int, str] = {}
    payments: dict[int, dict[str, Money]] = defaultdict(dict)
    unknown: list[tuple[str, int | None]] = []
    for row in reconciliations.stampli_record_facts(store):
        bill_id = row["fb_bill_id"]
        if bill_id is None or bill_id not in bills:
            unknown.append((row["stampli_invoice_id"], bill_id))
            continue
        invoice[bill_id] = row["stampli_invoice_id"]
        kind = row["export_kind"]
        if kind == "capture":
            captured.add(bill_id)
        elif kind == "approval":
            text = row["occurred_at"]
            moment = datetime.fromisoformat(text) if text else None
            previous = approval.get(bill_id)
            older = previous is not None and previous[1] and moment and moment < previous[1]
            if not older:
                approval[bill_id] = (row["status"], moment)
        elif kind == "payment" and row["amount"] is not None:
            key = row["payment_id"] or f"line-{row['line']}"
            if row["status"] in VOID_STATUSES:
                payments[bill_id].pop(key, None)
                continue
            currency = row["currency_code"] or bills[bill_id].currency
            payments[bill_id][key] = Money(Decimal(row["amount"]), currency)
    facts = {
        bill_id: StampliFacts(
            captured=bill_id in captured,
            approval=approval.get(bill_id, ("", None))[0],
            approved_at=approval.get(bill_id, ("", None))[1],
            invoice_id=invoice.get(bill_id, ""),
            payments=tuple(payments.get(bill_id, {}).values()),
        )
        for bill_id in captured | set(approval) | set(payments)
    }
    return facts, unknown


def reconcile_state(
    store: Store,
    source: BillSource,
    settings: ReconcileSettings,
    *,
    now: datetime,
    run_id: int,
    report: RunReport,
) -> None:
    """Classify every bill from fresh FreshBooks facts and the stored Stampli records.

    The results and the audit rows of the bills whose outcome changed are one
    transaction: a killed reconcile leaves no half report behind.
    """
    bills = {
        bill.fb_id: BillFacts(bill.fb_id, bill.currency_code, bill.total_amount)
        for bill in source.list_bills()
        if bill.vis_state != VisState.DELETED
    }
    fb_payments: dict[int, list[Money]] = defaultdict(list)
    for payment in source.list_bill_payments():
        if payment.vis_state != VisState.DELETED:
            currency = payment.currency_code or (
                bills[payment.bill_id].currency if payment.bill_id in bills else ""
            )
            fb_payments[payment.bill_id].append(Money(payment.amount, currency))
    stampli, unknown = stampli_facts(store, bills)
    delivered = outbox.first_delivered_at(store, Kind.BILL)
    results = matching.reconcile(
        bills,
        fb_payments,
        stampli,
        unknown,
        delivered,
        now=now,
        approved_unpaid_days=settings.approved_unpaid_days,
        uncaptured_hours=settings.uncaptured_hours,
    )
    at = store.now_text()
    attention = [r for r in results if r.outcome.needs_attention]
    before = reconciliations.previous_outcomes(store, run_id)
    # Only what changed goes to the audit trail: ten runs of 500 unchanged bills would
    # otherwise write 5,000 lines and bury the failures. A bill seen for the first time is
    # written when it needs attention; after that, every change (a fix back to matched too).
    changed = [
        r
        for r in results
        if (
            (previous := before.get((r.fb_bill_id, r.stampli_invoice_id or ""))) is None
            and r.outcome.needs_attention
        )
        or (previous is not None and previous != r.outcome.value)
    ]
    with store.transaction():
        reconciliations.add_results(
            store,
            [
                (run_id, r.fb_bill_id, r.stampli_invoice_id, r.outcome.value, r.detail)
                for r in results
            ],
        )
        store.audit_many(
            [
                (at, run_id, "bill", r.fb_bill_id, f"reconcile_{r.outcome.value}", r.detail)
                for r in changed
            ]
        )
    for result in results:
        report.add(result.outcome.value)
        report.items.append(
            {
                "fb_bill_id": result.fb_bill_id,
                "stampli_invoice_id": result.stampli_invoice_id,
                "outcome": result.outcome.value,
                "detail": result.detail,
            }
        )
    report.attention = bool(attention)
