"""Every reconciliation outcome, each produced by one prepared case and checked exactly."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from fbstampli.sync.reconcile import BillFacts, Money, Outcome, StampliFacts, classify, reconcile

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BILL = BillFacts(1, "USD", Decimal("100.00"))


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


CASES = [
    (
        "matched",
        [usd("100.00")],
        StampliFacts(captured=True, payments=(usd("100.00"),)),
        None,
        Outcome.MATCHED,
    ),
    (
        "partials sum to the same",
        [usd("60.00"), usd("40.00")],
        StampliFacts(captured=True, payments=(usd("30.00"), usd("70.00"))),
        None,
        Outcome.MATCHED,
    ),
    (
        "amount differs",
        [usd("100.00")],
        StampliFacts(captured=True, payments=(usd("90.00"),)),
        None,
        Outcome.AMOUNT_DIFFERS,
    ),
    (
        "currencies never match",
        [usd("100.00")],
        StampliFacts(captured=True, payments=(Money(Decimal("100.00"), "CAD"),)),
        None,
        Outcome.AMOUNT_DIFFERS,
    ),
    (
        "paid in FreshBooks only",
        [usd("100.00")],
        StampliFacts(captured=True),
        None,
        Outcome.PAID_IN_FRESHBOOKS_ONLY,
    ),
    (
        "paid in Stampli only",
        [],
        StampliFacts(captured=True, payments=(usd("100.00"),)),
        None,
        Outcome.PAID_IN_STAMPLI_ONLY,
    ),
    (
        "approved long ago, unpaid",
        [],
        StampliFacts(captured=True, approval="approved", approved_at=NOW - timedelta(days=8)),
        None,
        Outcome.APPROVED_NOT_PAID,
    ),
    (
        "approved recently",
        [],
        StampliFacts(captured=True, approval="approved", approved_at=NOW - timedelta(days=2)),
        None,
        Outcome.IN_PROGRESS,
    ),
    ("delivered, never captured", [], None, NOW - timedelta(hours=30), Outcome.NOT_CAPTURED),
    ("delivered an hour ago", [], None, NOW - timedelta(hours=1), Outcome.IN_PROGRESS),
    (
        "rejected, unpaid",
        [],
        StampliFacts(captured=True, approval="rejected"),
        NOW - timedelta(days=3),
        Outcome.IN_PROGRESS,
    ),
]


@pytest.mark.parametrize(
    ("label", "fb", "stampli", "delivered", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_each_bill_gets_exactly_its_outcome(label, fb, stampli, delivered, expected) -> None:
    result = classify(
        BILL,
        fb,
        stampli,
        delivered_at=delivered,
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert result.outcome is expected


def test_stampli_rows_naming_no_bill_are_unknown_to_freshbooks() -> None:
    results = reconcile(
        {1: BILL},
        {1: [usd("100.00")]},
        {1: StampliFacts(captured=True, payments=(usd("100.00"),))},
        [("STP-9", 999), ("STP-9", 999), ("STP-10", None)],
        {},
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert [(r.fb_bill_id, r.outcome) for r in results] == [
        (1, Outcome.MATCHED),
        (None, Outcome.UNKNOWN_TO_FRESHBOOKS),
        (999, Outcome.UNKNOWN_TO_FRESHBOOKS),
    ]


def test_bills_neither_side_mentions_are_left_out() -> None:
    results = reconcile(
        {1: BILL, 2: BillFacts(2, "USD", Decimal(5))},
        {},
        {},
        [],
        {1: NOW},
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert [r.fb_bill_id for r in results] == [1]


def test_only_mismatches_need_attention() -> None:
    assert {o for o in Outcome if o.needs_attention} == set(Outcome) - {
        Outcome.MATCHED,
        Outcome.IN_PROGRESS,
    }
