"""Reconciliation: FreshBooks bill payments against what Stampli says, one outcome per bill.

Pure: takes plain facts, returns classifications. Amounts are `Decimal`;
amounts in different currencies are never taken to match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class Outcome(StrEnum):
    MATCHED = "matched"
    AMOUNT_DIFFERS = "amount_differs"
    PAID_IN_FRESHBOOKS_ONLY = "paid_in_freshbooks_only"
    PAID_IN_STAMPLI_ONLY = "paid_in_stampli_only"
    APPROVED_NOT_PAID = "approved_not_paid"
    NOT_CAPTURED = "not_captured"
    UNKNOWN_TO_FRESHBOOKS = "unknown_to_freshbooks"
    IN_PROGRESS = "in_progress"  # nothing to pay yet and nothing overdue: no attention needed
    # Set after classifying, by sync/baseline.py: paid in FreshBooks before go-live, and an
    # outcome an accountant gave a reason for while its facts hold. Neither needs attention.
    HISTORY = "history"
    ACKNOWLEDGED = "acknowledged"

    @property
    def needs_attention(self) -> bool:
        return self not in (
            Outcome.MATCHED,
            Outcome.IN_PROGRESS,
            Outcome.HISTORY,
            Outcome.ACKNOWLEDGED,
        )


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
