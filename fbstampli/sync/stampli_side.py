"""What Stampli's stored exports say per bill, for reconcile. Pure: rows in, facts out.

The approval that counts is the latest by its own time (exports can arrive out
of order), by arrival when a row carries no time. A payment exported twice
(same payment id) counts once, the later row winning; one later reported void
no longer counts. An amount without a currency is in its bill's currency. What
Stampli holds of the invoice is the total on its latest capture or approval row
that carries one. Rows naming a `carried` bill are left out: that bill keeps
the outcome it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from fbstampli.sync.bill_checks import Held
from fbstampli.sync.matching import VOID_STATUSES, BillFacts, RecordRow, StampliFacts
from fbstampli.sync.payment_match import Money


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _later(moment: datetime | None, previous: datetime | None) -> bool:
    """Whether a row at `moment` replaces one at `previous` (rows without a time: by arrival)."""
    return not (previous is not None and moment is not None and moment < previous)


@dataclass
class _Bill:
    """One bill's facts as its rows are read."""

    invoice_id: str = ""
    captured: bool = False
    approval: tuple[str, datetime | None, str, Money | None] | None = None
    held: tuple[Held, datetime | None] | None = None
    payments: dict[str, Money] = field(default_factory=dict)
    paid_rows: bool = False  # a payment row was read, even one later voided
    voided: dict[str, Money] = field(default_factory=dict)  # payments Stampli later voided

    def facts(self) -> StampliFacts:
        status, at, approver, amount = self.approval or ("", None, "", None)
        return StampliFacts(
            captured=self.captured,
            approval=status,
            approved_at=at,
            invoice_id=self.invoice_id,
            payments=tuple(self.payments.values()),
            held=self.held[0] if self.held else None,
            approved_amount=amount,
            approver=approver,
            voided=tuple(self.voided.values()),
        )


def _amount(row: RecordRow, bill: BillFacts) -> Money | None:
    if row["amount"] is None:
        return None
    return Money(Decimal(str(row["amount"])), row["currency_code"] or bill.currency)


def _read(facts: _Bill, row: RecordRow, bill: BillFacts) -> None:
    kind = row["export_kind"]
    moment = _moment(row["occurred_at"])
    amount = _amount(row, bill)
    held = kind in ("capture", "approval") and amount is not None
    if held and amount is not None and (facts.held is None or _later(moment, facts.held[1])):
        approved = kind == "approval" and row["status"] == "approved"  # else it is what it read
        facts.held = (Held(amount, "approval" if approved else "capture"), moment)
    if kind == "capture":
        facts.captured = True
    elif kind == "approval":
        if facts.approval is None or _later(moment, facts.approval[1]):
            facts.approval = (row["status"], moment, row["approver"] or "", amount)
    elif kind == "payment" and amount is not None:
        facts.paid_rows = True
        key = row["payment_id"] or f"line-{row['line']}"
        paid_on = date.fromisoformat(row["payment_date"]) if row["payment_date"] else None
        payment = Money(amount.amount, amount.currency, paid_on, row["payment_id"] or "")
        if row["status"] in VOID_STATUSES:
            facts.voided[key] = facts.payments.pop(key, payment)
            return
        facts.voided.pop(key, None)
        facts.payments[key] = payment


def stampli_facts(
    rows: Iterable[RecordRow],
    bills: Mapping[int, BillFacts],
    *,
    carried: frozenset[int] = frozenset(),
) -> tuple[dict[int, StampliFacts], list[tuple[str, int | None]]]:
    """What Stampli's rows say per bill (see the module); rows naming no FreshBooks bill go
    apart, as (Stampli invoice id, the bill id named or None)."""
    seen: dict[int, _Bill] = {}
    unknown: list[tuple[str, int | None]] = []
    for row in rows:
        bill_id = row["fb_bill_id"]
        if bill_id in carried:
            continue
        if bill_id is None or bill_id not in bills:
            unknown.append((row["stampli_invoice_id"], bill_id))
            continue
        facts = seen.setdefault(bill_id, _Bill())
        facts.invoice_id = row["stampli_invoice_id"]
        _read(facts, row, bills[bill_id])
    known = {
        bill_id: facts.facts()
        for bill_id, facts in seen.items()
        if facts.captured or facts.approval is not None or facts.paid_rows
    }
    return known, unknown
