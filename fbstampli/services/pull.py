"""pull-stampli and reconcile: Stampli's exports back into the audit trail, then matched."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from fbstampli.clock import from_utc_text, to_utc_text
from fbstampli.models import VisState
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.store.runs import finish_run, start_run
from fbstampli.sync import reconcile as matching
from fbstampli.sync.reconcile import BillFacts, Money, StampliFacts

LAST_PULL_KEY = "pull.last_run"


def run_pull(rt: Runtime, *, now: bool = False) -> RunReport:
    """One poll of the outbound folder, unless the interval has not passed (`now` overrides)."""
    from fbstampli.sync.pull import pull

    report = RunReport("pull-stampli")
    last = rt.store.get_value(LAST_PULL_KEY)
    interval = timedelta(minutes=rt.settings.pull.interval_minutes)
    if not now and last and rt.clock.now() - from_utc_text(last) < interval:
        report.notes.append("not due yet (pull.interval_minutes); use --now to poll anyway")
        return report
    run_id = start_run(rt.store, "pull-stampli")
    try:
        pull(
            rt.store,
            rt.transport(),
            rt.template(),
            settings=rt.settings,
            folder=rt.paths.stampli_files,
            quarantine=rt.paths.quarantine,
            run_id=run_id,
            report=report,
        )
        with rt.store.transaction():
            rt.store.put_value(LAST_PULL_KEY, to_utc_text(rt.clock.now()))
    finally:
        finish_run(rt.store, run_id, report)
    return report


def pull_stampli(options: Options, *, now: bool) -> RunReport:
    with open_runtime(options) as rt:
        return run_pull(rt, now=now)


def _stampli_facts(
    rt: Runtime, bill_ids: set[int]
) -> tuple[dict[int, StampliFacts], list[tuple[str, int | None]]]:
    """What Stampli's stored exports say per bill; rows naming no FreshBooks bill go apart."""
    captured: set[int] = set()
    approval: dict[int, tuple[str, datetime | None]] = {}
    invoice: dict[int, str] = {}
    payments: dict[int, dict[str, Money]] = defaultdict(dict)
    unknown: list[tuple[str, int | None]] = []
    for row in rt.store.iterate(
        "SELECT export_kind, stampli_invoice_id, fb_bill_id, status, payload "
        "FROM stampli_records ORDER BY id"
    ):
        bill_id = row["fb_bill_id"]
        if bill_id is None or int(bill_id) not in bill_ids:
            unknown.append((row["stampli_invoice_id"], bill_id))
            continue
        bill_id = int(bill_id)
        invoice[bill_id] = row["stampli_invoice_id"]
        data = json.loads(row["payload"])
        if row["export_kind"] == "capture":
            captured.add(bill_id)
        elif row["export_kind"] == "approval":
            moment = (
                datetime.fromisoformat(data["occurred_at"]) if data.get("occurred_at") else None
            )
            approval[bill_id] = (row["status"], moment)
        elif row["export_kind"] == "payment" and data.get("amount") is not None:
            key = data.get("payment_id") or f"line-{data.get('source_line')}"
            payments[bill_id][key] = Money(Decimal(data["amount"]), data.get("currency_code") or "")
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


def run_reconcile(rt: Runtime) -> RunReport:
    """Fetch FreshBooks' bills and payments fresh, classify each bill, store and report."""
    report = RunReport("reconcile")
    run_id = start_run(rt.store, "reconcile")
    try:
        source = rt.freshbooks()
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
        stampli, unknown = _stampli_facts(rt, set(bills))
        stampli = {
            bill_id: _with_currency(facts, bills[bill_id].currency)
            for bill_id, facts in stampli.items()
        }
        delivered = {
            int(row["fb_id"]): from_utc_text(row["at"])
            for row in rt.store.query(
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
            now=rt.clock.now(),
            approved_unpaid_days=rt.settings.reconcile.approved_unpaid_days,
            uncaptured_hours=rt.settings.reconcile.uncaptured_hours,
        )
        with rt.store.transaction():
            rt.store.execute_many(
                "INSERT INTO reconciliations "
                "(run_id, fb_bill_id, stampli_invoice_id, outcome, detail) VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, r.fb_bill_id, r.stampli_invoice_id, r.outcome.value, r.detail)
                    for r in results
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
                if result.outcome.needs_attention:
                    report.attention = True
                    rt.store.audit(
                        f"reconcile_{result.outcome.value}",
                        kind="bill",
                        fb_id=result.fb_bill_id,
                        detail=result.detail,
                        run_id=run_id,
                    )
    finally:
        finish_run(rt.store, run_id, report)
    return report


def _with_currency(facts: StampliFacts, currency: str) -> StampliFacts:
    """Stampli payments without a currency are in the bill's currency."""
    payments = tuple(Money(p.amount, p.currency or currency) for p in facts.payments)
    return replace(facts, payments=payments)


def reconcile(options: Options) -> RunReport:
    with open_runtime(options) as rt:
        return run_reconcile(rt)


def sync_steps() -> list[Callable[[Runtime], RunReport]]:
    """The steps `sync` runs after push-bills, under the same lock."""
    return [run_pull, run_reconcile]
