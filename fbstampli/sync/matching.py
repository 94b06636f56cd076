"""Reconciliation: FreshBooks bill payments against what Stampli says, one outcome per bill.

The outcome rules (`classify`) with their matching inputs: which bill a Stampli
row belongs to (`BillLinks`, used as exports are pulled) and what Stampli's rows
say per bill (`stampli_facts`, used as reconcile runs). Pure: takes plain facts
(rows read by the caller), returns classifications. Amounts are `Decimal`;
amounts in different currencies are never taken to match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from fbstampli.models import StampliRecord
from fbstampli.models.outcome import Outcome


@dataclass(frozen=True, slots=True)
class BillFacts:
    fb_id: int
    currency: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class StampliFacts:
    captured: bool = False
    approval: str = ""  # latest approval status
    approved_at: datetime | None = None
    invoice_id: str = ""
    payments: tuple[Money, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    fb_bill_id: int | None
    stampli_invoice_id: str
    outcome: Outcome
    detail: str


def _total(payments: Iterable[Money]) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for payment in payments:
        sums[payment.currency] += payment.amount
    return dict(sums)


def _describe(sums: Mapping[str, Decimal]) -> str:
    return " + ".join(f"{amount} {currency}" for currency, amount in sorted(sums.items())) or "0"


def classify(
    bill: BillFacts,
    fb_payments: Iterable[Money],
    stampli: StampliFacts | None,
    *,
    delivered_at: datetime | None,
    now: datetime,
    approved_unpaid_days: int,
    uncaptured_hours: int,
) -> Result:
    fb = _total(fb_payments)
    st = _total(stampli.payments) if stampli else {}
    invoice = stampli.invoice_id if stampli else ""
    if fb and st:
        if fb == st:
            return Result(bill.fb_id, invoice, Outcome.MATCHED, f"paid {_describe(fb)} in both")
        return Result(
            bill.fb_id,
            invoice,
            Outcome.AMOUNT_DIFFERS,
            f"FreshBooks paid {_describe(fb)}, Stampli paid {_describe(st)}",
        )
    if fb:
        return Result(
            bill.fb_id, invoice, Outcome.PAID_IN_FRESHBOOKS_ONLY, f"FreshBooks paid {_describe(fb)}"
        )
    if st:
        return Result(
            bill.fb_id, invoice, Outcome.PAID_IN_STAMPLI_ONLY, f"Stampli paid {_describe(st)}"
        )
    if stampli and stampli.approval == "approved" and stampli.approved_at is not None:
        overdue = now - stampli.approved_at >= timedelta(days=approved_unpaid_days)
        if overdue:
            return Result(
                bill.fb_id,
                invoice,
                Outcome.APPROVED_NOT_PAID,
                f"approved in Stampli on {stampli.approved_at.date()}, unpaid in FreshBooks",
            )
    captured = stampli is not None and (stampli.captured or bool(stampli.approval))
    waited = delivered_at is not None and now - delivered_at >= timedelta(hours=uncaptured_hours)
    if not captured and waited and delivered_at is not None:
        return Result(
            bill.fb_id,
            invoice,
            Outcome.NOT_CAPTURED,
            f"sent to Stampli {delivered_at.isoformat(timespec='minutes')}, not captured yet",
        )
    return Result(bill.fb_id, invoice, Outcome.IN_PROGRESS, stampli.approval if stampli else "")


def changes_by_time_at(
    stampli: StampliFacts | None,
    *,
    delivered_at: datetime | None,
    approved_unpaid_days: int,
    uncaptured_hours: int,
) -> datetime | None:
    """When an in-progress bill's outcome turns by time alone, with no new fact: an approval
    left unpaid too long, or a bill sent and not captured in time. None: time alone never
    turns it (only a new fact can). The rules are `classify`'s, read forward."""
    moments = []
    if stampli is not None and stampli.approval == "approved" and stampli.approved_at is not None:
        moments.append(stampli.approved_at + timedelta(days=approved_unpaid_days))
    captured = stampli is not None and (stampli.captured or bool(stampli.approval))
    if not captured and delivered_at is not None:
        moments.append(delivered_at + timedelta(hours=uncaptured_hours))
    return min(moments, default=None)


def reconcile(
    bills: Mapping[int, BillFacts],
    fb_payments: Mapping[int, list[Money]],
    stampli: Mapping[int, StampliFacts],
    unknown: Iterable[tuple[str, int | None]],
    delivered_at: Mapping[int, datetime],
    *,
    now: datetime,
    approved_unpaid_days: int,
    uncaptured_hours: int,
) -> list[Result]:
    """One result per bill FreshBooks or Stampli mentions; Stampli rows matching no bill too."""
    results = [
        classify(
            bill,
            fb_payments.get(bill_id, []),
            stampli.get(bill_id),
            delivered_at=delivered_at.get(bill_id),
            now=now,
            approved_unpaid_days=approved_unpaid_days,
            uncaptured_hours=uncaptured_hours,
        )
        for bill_id, bill in sorted(bills.items())
        if bill_id in stampli or bill_id in delivered_at or bill_id in fb_payments
    ]
    return results + unknown_to_freshbooks(unknown)


def unknown_to_freshbooks(unknown: Iterable[tuple[str, int | None]]) -> list[Result]:
    """One result per Stampli invoice (and the bill id it names, if any) FreshBooks lacks."""
    return [
        Result(
            bill_id,
            invoice_id,
            Outcome.UNKNOWN_TO_FRESHBOOKS,
            "Stampli knows this invoice; FreshBooks has no such bill",
        )
        for invoice_id, bill_id in sorted(set(unknown), key=lambda item: (item[0], item[1] or 0))
    ]


# A payment Stampli later reports with one of these statuses no longer counts as paid.
VOID_STATUSES = frozenset({"void", "voided", "cancelled", "canceled", "reversed", "failed"})
VendorNames = Callable[[], Iterator[tuple[int, str]]]  # (vendor id, name)
BillNumbers = Callable[[], Iterator[tuple[int, int | None, str]]]  # (bill, vendor, number)


class RecordRow(Protocol):
    """A stored Stampli record, read by column name (a `sqlite3.Row`)."""

    def __getitem__(self, key: str, /) -> Any: ...


class BillLinks:
    """Finds the FreshBooks bill a Stampli row belongs to.

    The bill id we wrote is the link. Without it (a Stampli layout that drops
    the column), vendor + invoice number is matched against the bills we
    snapshotted; invoice numbers are not unique, so anything ambiguous links
    to nothing rather than to the wrong bill. The index is built once per
    poll, on first need, so a file that carries our ids costs no lookups; it
    is read through the two callables given (the snapshots, in `sync/pull.py`).
    """

    def __init__(self, vendor_names: VendorNames, bill_numbers: BillNumbers) -> None:
        self._vendor_names = vendor_names
        self._bill_numbers = bill_numbers
        self._index: dict[tuple[str, str, str], set[int]] | None = None

    def _build(self) -> dict[tuple[str, str, str], set[int]]:
        names = {fb_id: name.casefold().strip() for fb_id, name in self._vendor_names()}
        index: dict[tuple[str, str, str], set[int]] = {}
        for bill_id, vendor_id, bill_number in self._bill_numbers():
            number = bill_number.strip()
            if not number:
                continue
            keys = [("number", "", number)]
            if vendor_id is not None:
                keys.append(("vendor_id", str(vendor_id), number))
                if names.get(vendor_id):
                    keys.append(("vendor_name", names[vendor_id], number))
            for key in keys:
                index.setdefault(key, set()).add(bill_id)
        return index

    def bill_id(self, record: StampliRecord) -> int | None:
        if record.fb_bill_id is not None:
            return record.fb_bill_id
        number = record.invoice_number.strip()
        if not number:
            return None
        if self._index is None:
            self._index = self._build()
        vendor_id, vendor_name = record.vendor_id.strip(), record.vendor_name.casefold().strip()
        candidates: set[int] = set()
        if vendor_id:
            candidates = self._index.get(("vendor_id", vendor_id, number), set())
        if not candidates and vendor_name:
            candidates = self._index.get(("vendor_name", vendor_name, number), set())
        if not vendor_id and not vendor_name:
            candidates = self._index.get(("number", "", number), set())
        return next(iter(candidates)) if len(candidates) == 1 else None


def stampli_facts(
    rows: Iterable[RecordRow],
    bills: Mapping[int, BillFacts],
    *,
    carried: frozenset[int] = frozenset(),
) -> tuple[dict[int, StampliFacts], list[tuple[str, int | None]]]:
    """What Stampli's stored exports say per bill; rows naming no FreshBooks bill go apart.

    The approval that counts is the latest by its own time (exports can
    arrive out of order), by arrival when a row carries no time. A payment
    exported twice (same payment id) counts once, the later row winning; one
    later reported void no longer counts. A payment without a currency is in
    its bill's currency. Rows naming a `carried` bill are left out: that
    bill keeps the outcome it has.
    """
    captured: set[int] = set()
    approval: dict[int, tuple[str, datetime | None]] = {}
    invoice: dict[int, str] = {}
    payments: dict[int, dict[str, Money]] = defaultdict(dict)
    unknown: list[tuple[str, int | None]] = []
    for row in rows:
        bill_id = row["fb_bill_id"]
        if bill_id in carried:
            continue
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
