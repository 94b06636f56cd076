"""pull-stampli and reconcile: Stampli's exports back into the audit trail, then matched."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from fbstampli.clock import from_utc_text, to_utc_text
from fbstampli.config import ReconcileSettings
from fbstampli.models import VisState
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.store import Store
from fbstampli.store.runs import finish_failed_run, finish_run, start_run
from fbstampli.sync import reconcile as matching
from fbstampli.sync.ports import BillSource
from fbstampli.sync.reconcile import BillFacts, Money, StampliFacts

LAST_PULL_KEY = "pull.last_run"
# A payment Stampli later reports with one of these statuses no longer counts as paid.
VOID_STATUSES = frozenset({"void", "voided", "cancelled", "canceled", "reversed", "failed"})


def run_pull(rt: Runtime, *, now: bool = False) -> RunReport:
    """One poll of the outbound folder, unless the interval has not passed (`now` overrides)."""
    from fbstampli.sync.connection import Connection
    from fbstampli.sync.pull import PullContext, is_due, pull

    report = RunReport("pull-stampli")
    last = rt.store.get_value(LAST_PULL_KEY)
    interval = timedelta(minutes=rt.settings.pull.interval_minutes)
    if not now and not is_due(from_utc_text(last) if last else None, rt.clock.now(), interval):
        report.notes.append("not due yet (pull.interval_minutes); use --now to poll anyway")
        return report
    run_id = start_run(rt.store, "pull-stampli")
    try:
        context = PullContext(
            template=rt.template(),
            settings=rt.settings,
            folder=rt.paths.stampli_files,
            quarantine=rt.paths.quarantine,
            run_id=run_id,
        )
        pull(rt.store, Connection(rt.transport), context, report)
        with rt.store.transaction():
            rt.store.put_value(LAST_PULL_KEY, to_utc_text(rt.clock.now()))
    except BaseException as error:
        finish_failed_run(rt.store, run_id, report, error)
        raise
    finish_run(rt.store, run_id, report)
    return report


def pull_stampli(options: Options, *, now: bool) -> RunReport:
    with open_runtime(options) as rt:
        return run_pull(rt, now=now)


def _stampli_facts(
    store: Store, bills: Mapping[int, BillFacts]
) -> tuple[dict[int, StampliFacts], list[tuple[str, int | None]]]:
    """What Stampli's stored exports say per bill; rows naming no FreshBooks bill go apart.

    The approval that counts is the latest by its own time (exports can
    arrive out of order), by arrival when a row carries no time. A payment
    exported twice (same payment id) counts once, the later row winning; one
    later reported void no longer counts. A payment without a currency is in
    its bill's currency. The few payload fields needed are read by SQLite's
    JSON functions, so 100,000 rows cost no Python JSON parsing.
    """
    captured: set[int] = set()
    approval: dict[int, tuple[str, datetime | None]] = {}
    invoice: dict[int, str] = {}
    payments: dict[int, dict[str, Money]] = defaultdict(dict)
    unknown: list[tuple[str, int | None]] = []
    for row in store.iterate(
        "SELECT export_kind, stampli_invoice_id, fb_bill_id, status, line, "
        "CASE WHEN export_kind = 'approval' THEN json_extract(payload, '$.occurred_at') END "
        "AS occurred_at, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.amount') END AS amount, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.payment_id') END "
        "AS payment_id, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.currency_code') END "
        "AS currency_code "
        "FROM stampli_records ORDER BY id"
    ):
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

    The results and the audit rows of the bills needing attention are one
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
    stampli, unknown = _stampli_facts(store, bills)
    delivered = {
        int(row["fb_id"]): datetime.fromisoformat(row["at"])
        for row in store.iterate(
            "SELECT fb_id, min(updated_at) AS at FROM deliveries "
            "WHERE kind = 'bill' AND status = 'delivered' GROUP BY fb_id"
        )
    }
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
    with store.transaction():
        store.execute_many(
            "INSERT INTO reconciliations "
            "(run_id, fb_bill_id, stampli_invoice_id, outcome, detail) VALUES (?, ?, ?, ?, ?)",
            [
                (run_id, r.fb_bill_id, r.stampli_invoice_id, r.outcome.value, r.detail)
                for r in results
            ],
        )
        store.execute_many(
            "INSERT INTO audit (at, run_id, kind, fb_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (at, run_id, "bill", r.fb_bill_id, f"reconcile_{r.outcome.value}", r.detail)
                for r in attention
            ],
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


def run_reconcile(rt: Runtime) -> RunReport:
    """Fetch FreshBooks' bills and payments fresh, classify each bill, store and report."""
    report = RunReport("reconcile")
    run_id = start_run(rt.store, "reconcile")
    try:
        reconcile_state(
            rt.store,
            rt.freshbooks(),
            rt.settings.reconcile,
            now=rt.clock.now(),
            run_id=run_id,
            report=report,
        )
    except BaseException as error:
        finish_failed_run(rt.store, run_id, report, error)
        raise
    finish_run(rt.store, run_id, report)
    return report


def reconcile(options: Options) -> RunReport:
    with open_runtime(options) as rt:
        return run_reconcile(rt)


def sync_steps() -> list[Callable[[Runtime], RunReport]]:
    """The steps `sync` runs after push-bills, under the same lock."""
    return [run_pull, run_reconcile]
