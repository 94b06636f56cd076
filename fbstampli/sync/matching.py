"""Reconciliation: FreshBooks bill payments against what Stampli says, one outcome per bill.

The outcome rules (`classify`) with their matching inputs: which bill a Stampli
row belongs to (`BillLinks`, used as exports are pulled); what Stampli's rows say
per bill is `sync/stampli_side.py`'s, the payments are paired one by one in
`sync/payment_match.py` and what Stampli holds of the bill is checked in
`sync/bill_checks.py`. Pure: takes plain facts (rows read by the caller), returns
classifications. Amounts are `Decimal`; amounts in different currencies are never
taken to match.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from fbstampli.models import StampliRecord
from fbstampli.models.outcome import Outcome
from fbstampli.sync.bill_checks import (
    REJECTED_STATUSES,
    Held,
    Version,
    changed_after_approval,
    deleted_outcome,
    held_outcome,
    rejected_but_paid,
)
from fbstampli.sync.payment_match import EXACT, Money, Tolerance, judge_payments

__all__ = ["Held", "Money", "Tolerance", "Version"]


@dataclass(frozen=True, slots=True)
class BillFacts:
    fb_id: int
    currency: str
    total: Decimal


@dataclass(frozen=True, slots=True)
class StampliFacts:
    captured: bool = False
    approval: str = ""  # latest approval status
    approved_at: datetime | None = None  # when that status was given
    invoice_id: str = ""
    payments: tuple[Money, ...] = ()
    held: Held | None = None  # the total on the latest capture or approval row
    approved_amount: Money | None = None  # the total on the latest approval row
    approver: str = ""
    voided: tuple[Money, ...] = ()  # payments Stampli exported, then reported void


@dataclass(frozen=True, slots=True)
class Result:
    fb_bill_id: int | None
    stampli_invoice_id: str
    outcome: Outcome
    detail: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """A bill FreshBooks deleted: when, and when its VOID reached Stampli (None: never)."""

    bill: BillFacts
    on: date | None = None
    void_sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rules:
    """The settings the payment and version checks judge by."""

    tolerance: Tolerance = EXACT
    window_days: int = 5


def classify(
    bill: BillFacts,
    fb_payments: Iterable[Money],
    stampli: StampliFacts | None,
    *,
    delivered_at: datetime | None,
    now: datetime,
    approved_unpaid_days: int,
    uncaptured_hours: int,
    rules: Rules = Rules(),
    versions: Sequence[Version] = (),
) -> Result:
    """The bill's one outcome: a payment difference first, then what Stampli holds of the
    bill, then how far it went (approved and unpaid, not captured, in progress)."""
    invoice = stampli.invoice_id if stampli else ""
    fb = list(fb_payments)
    st = list(stampli.payments) if stampli else []
    total = Money(bill.total, bill.currency)
    verdict = None
    if stampli is not None and not st:
        verdict = rejected_but_paid(stampli.approval, stampli.approved_at, stampli.approver, fb)
    voided = stampli.voided if stampli else ()
    paid = verdict or judge_payments(total, fb, st, rules.tolerance, rules.window_days, voided)
    if paid is not None and paid[0].needs_attention:
        return Result(bill.fb_id, invoice, *paid)
    if stampli is not None and stampli.approval not in REJECTED_STATUSES:
        verdict = changed_after_approval(
            total,
            stampli.approval,
            stampli.approved_at,
            stampli.approved_amount,
            versions,
            rules.tolerance,
        ) or held_outcome(total, stampli.held, versions, rules.tolerance)
    if verdict is not None:
        return Result(bill.fb_id, invoice, *verdict)
    if paid is not None:
        return Result(bill.fb_id, invoice, *paid)
    return _unpaid(
        bill,
        stampli,
        delivered_at=delivered_at,
        now=now,
        approved_unpaid_days=approved_unpaid_days,
        uncaptured_hours=uncaptured_hours,
    )


def _unpaid(
    bill: BillFacts,
    stampli: StampliFacts | None,
    *,
    delivered_at: datetime | None,
    now: datetime,
    approved_unpaid_days: int,
    uncaptured_hours: int,
) -> Result:
    """A bill neither side paid: approved too long ago, not captured in time, or in progress."""
    invoice = stampli.invoice_id if stampli else ""
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


def classify_deleted(deleted: Deleted, stampli: StampliFacts | None) -> Result:
    """A bill FreshBooks deleted, by what Stampli did with it."""
    verdict = deleted_outcome(
        deleted.on,
        deleted.void_sent_at,
        stampli.approval if stampli else "",
        stampli.approved_at if stampli else None,
        stampli.payments if stampli else (),
    )
    return Result(deleted.bill.fb_id, stampli.invoice_id if stampli else "", *verdict)


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
    rules: Rules = Rules(),
    versions: Mapping[int, Sequence[Version]] | None = None,
    deleted: Mapping[int, Deleted] | None = None,
) -> list[Result]:
    """One result per bill FreshBooks or Stampli mentions; Stampli rows matching no bill too.
    A deleted bill has a result when Stampli was sent it or names it."""
    results = [
        classify(
            bill,
            fb_payments.get(bill_id, []),
            stampli.get(bill_id),
            delivered_at=delivered_at.get(bill_id),
            now=now,
            approved_unpaid_days=approved_unpaid_days,
            uncaptured_hours=uncaptured_hours,
            rules=rules,
            versions=(versions or {}).get(bill_id, ()),
        )
        for bill_id, bill in sorted(bills.items())
        if bill_id in stampli or bill_id in delivered_at or bill_id in fb_payments
    ]
    results += [
        classify_deleted(gone, stampli.get(bill_id))
        for bill_id, gone in sorted((deleted or {}).items())
        if bill_id not in bills and (bill_id in stampli or bill_id in delivered_at)
    ]
    results.sort(key=lambda result: result.fb_bill_id or 0)
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
BillDates = Callable[[Collection[int]], Mapping[int, date]]  # bill ids -> issue dates


class RecordRow(Protocol):
    """A stored Stampli record, read by column name (a `sqlite3.Row`)."""

    def __getitem__(self, key: str, /) -> Any: ...


class BillLinks:
    """Finds the FreshBooks bill a Stampli row belongs to.

    The bill id we wrote is the link. Without it (a Stampli layout that drops
    the column), vendor + invoice number is matched against the bills we
    snapshotted; invoice numbers are not unique, so anything ambiguous links
    to nothing rather than to the wrong bill, unless the row's invoice date
    (`bill_dates`) leaves one: vendor + invoice number + date is the fallback key.
    The index is built once per poll, on first need, so a file that carries our
    ids costs no lookups; it is read through the callables given (the snapshots,
    in `sync/pull.py`).
    """

    def __init__(
        self,
        vendor_names: VendorNames,
        bill_numbers: BillNumbers,
        bill_dates: BillDates | None = None,
    ) -> None:
        self._vendor_names = vendor_names
        self._bill_numbers = bill_numbers
        self._bill_dates = bill_dates
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
        if len(candidates) > 1 and record.invoice_date is not None and self._bill_dates:
            dates = self._bill_dates(candidates)
            candidates = {bill for bill in candidates if dates.get(bill) == record.invoice_date}
        return next(iter(candidates)) if len(candidates) == 1 else None
