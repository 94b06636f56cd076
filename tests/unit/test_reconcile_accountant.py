"""#28's matching as an accountant reads it: payments paired one by one (reference, amount
within a tolerance, date within a window), never across currencies, and what Stampli holds
of a bill (captured amount, an approval of an earlier version, an old version, a rejection,
a deletion in FreshBooks)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fbstampli.config import ReconcileSettings
from fbstampli.models import ExportKind, StampliRecord
from fbstampli.models.outcome import Outcome
from fbstampli.summaries import reconcile_sentences
from fbstampli.sync.bill_checks import Held, Version, changed_after_approval, held_outcome
from fbstampli.sync.matching import (
    BillFacts,
    BillLinks,
    Deleted,
    Rules,
    StampliFacts,
    classify,
    classify_deleted,
)
from fbstampli.sync.payment_match import Money, Tolerance, judge_payments, pair_payments
from fbstampli.sync.reconcile_inputs import rules_of
from fbstampli.sync.stampli_side import stampli_facts
from tests.support.cli import one_line, run

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
BILL = BillFacts(7, "USD", Decimal("1000.00"))
TOTAL = Money(Decimal("1000.00"), "USD")
LOOSE = Tolerance(Decimal("0.05"), Decimal("0.1"))


def usd(amount: str, on: str | None = None, ref: str = "", note: str = "") -> Money:
    return Money(Decimal(amount), "USD", date.fromisoformat(on) if on else None, ref, note)


def judged(fb: list[Money], st: list[Money], tol: Tolerance = LOOSE) -> tuple[Outcome, str]:
    verdict = judge_payments(TOTAL, fb, st, tol, 5)
    assert verdict is not None
    return verdict


# -- payments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fb", "st", "expected"),
    [
        ("450.00", "450.01", Outcome.MATCHED),  # a cent: within 0.05
        ("450.00", "450.05", Outcome.MATCHED),  # exactly the bound
        ("450.00", "451.00", Outcome.AMOUNT_DIFFERS),  # 1.00 > 0.05 and > 0.1% of 451.00
        ("10000.00", "10008.00", Outcome.MATCHED),  # 8.00 <= 0.1% of 10008
        ("10000.00", "10011.00", Outcome.AMOUNT_DIFFERS),
    ],
)
def test_a_difference_within_either_tolerance_is_a_match_and_beyond_both_is_not(
    fb: str, st: str, expected: Outcome
) -> None:
    outcome, _ = judged([usd(fb, "2026-03-02")], [usd(st, "2026-03-02")])
    assert outcome is expected


def test_a_match_within_tolerance_says_so_and_an_exact_one_does_not() -> None:
    assert judged([usd("450.00")], [usd("450.01")])[1] == (
        "FreshBooks paid 450.00 USD, Stampli paid 450.01 USD; within the tolerance of "
        "0.05 or 0.1% (450.00 USD against 450.01)"
    )
    exact = judged([usd("1000.00")], [usd("1000.00")], Tolerance())
    assert exact[1] == "paid 1000.00 USD in both"


def test_without_a_tolerance_a_cent_is_a_difference() -> None:
    assert judged([usd("450.00")], [usd("450.01")], Tolerance())[0] is Outcome.AMOUNT_DIFFERS


def test_payments_in_no_common_currency_are_never_compared() -> None:
    outcome, detail = judged([usd("800.00")], [Money(Decimal("800.00"), "GBP")])
    assert outcome is Outcome.CURRENCY_DIFFERS
    assert detail.endswith("amounts in different currencies")


def test_payments_pair_by_date_within_the_window_then_the_leftover_is_named() -> None:
    fb = [usd("400.00", "2026-03-01"), usd("600.00", "2026-03-20")]
    pairing = pair_payments(fb, [usd("400.00", "2026-03-02")], LOOSE, 5)
    assert [(p.fb, p.by) for p in pairing.pairs] == [(fb[0], "amount and date")]
    outcome, detail = judged(fb, [usd("400.00", "2026-03-02")])
    assert outcome is Outcome.AMOUNT_DIFFERS
    assert detail.endswith("FreshBooks' 600.00 USD of 2026-03-20 has no matching Stampli payment")


def test_a_payment_outside_the_window_does_not_pair_by_amount() -> None:
    pairing = pair_payments([usd("500.00", "2026-03-01")], [usd("500.00", "2026-03-07")], LOOSE, 5)
    assert pairing.pairs == ()
    within = pair_payments([usd("500.00", "2026-03-01")], [usd("500.00", "2026-03-06")], LOOSE, 5)
    assert len(within.pairs) == 1


def test_a_reference_pairs_payments_whatever_their_dates() -> None:
    by_note = pair_payments(
        [usd("500.00", "2026-03-01", note="paid through Stampli SP-1500")],
        [usd("500.00", "2026-03-20", ref="SP-1500")],
        LOOSE,
        5,
    )
    by_id = pair_payments(
        [usd("500.00", "2026-03-01", ref="88")], [usd("500.00", "2026-06-01", ref="88")], LOOSE, 5
    )
    assert [p.by for p in by_note.pairs + by_id.pairs] == ["reference", "reference"]
    not_a_word = pair_payments(
        [usd("500.00", "2026-03-01", note="SP-15000")],
        [usd("500.00", "2026-03-20", ref="SP-1500")],
        LOOSE,
        5,
    )
    assert not_a_word.pairs == ()


def test_the_same_sum_split_differently_is_matched_and_said() -> None:
    outcome, detail = judged([usd("1000.00", "2026-03-10")], [usd("500.00"), usd("500.00")])
    assert outcome is Outcome.MATCHED
    assert "(the same sum, split or dated differently)" in detail


def test_a_partly_paid_bill_says_what_is_open_on_both_sides() -> None:
    outcome, detail = judged([usd("900.00")], [usd("900.00")])
    assert (outcome, detail) == (
        Outcome.MATCHED,
        "paid 900.00 USD in both; 100.00 USD of 1000.00 USD open on both sides",
    )


def test_the_tolerance_settings_become_the_rules() -> None:
    settings = ReconcileSettings(
        tolerance_amount="0.05", tolerance_percent="0.5", payment_window_days=3
    )
    assert rules_of(settings) == Rules(Tolerance(Decimal("0.05"), Decimal("0.5")), 3)


# -- what Stampli holds of the bill ---------------------------------------------------------

V1 = Version(1, usd("800.00"), NOW - timedelta(days=10), NOW - timedelta(days=10))
V2_SENT = Version(2, usd("1000.00"), NOW - timedelta(days=2), NOW - timedelta(days=2))
V2_QUEUED = Version(2, usd("1000.00"), NOW - timedelta(days=2), None)


def test_an_approval_of_an_earlier_version_is_changed_after_approval() -> None:
    verdict = changed_after_approval(
        TOTAL, "approved", NOW - timedelta(days=5), usd("800.00"), [V1, V2_SENT], LOOSE
    )
    assert verdict == (
        Outcome.CHANGED_AFTER_APPROVAL,
        "approved in Stampli on 2026-03-27 at 800.00 USD (version 1); "
        "FreshBooks' bill now totals 1000.00 USD (version 2)",
    )


def test_without_a_total_on_the_approval_its_time_tells_the_edit_came_after() -> None:
    after = changed_after_approval(
        TOTAL, "approved", NOW - timedelta(days=5), None, [V1, V2_SENT], LOOSE
    )
    assert after is not None
    assert after[0] is Outcome.CHANGED_AFTER_APPROVAL
    reapproved = changed_after_approval(
        TOTAL, "approved", NOW - timedelta(days=1), None, [V1, V2_SENT], LOOSE
    )
    assert reapproved is None


def test_an_approval_of_the_current_total_is_not_a_change() -> None:
    assert (
        changed_after_approval(TOTAL, "approved", NOW, usd("1000.00"), [V1, V2_SENT], LOOSE) is None
    )


def test_stampli_holding_an_old_version_is_said_once_the_new_one_reached_it() -> None:
    held = Held(usd("800.00"), "capture")
    verdict = held_outcome(TOTAL, held, [V1, V2_SENT], LOOSE)
    assert verdict is not None
    assert verdict[0] is Outcome.STAMPLI_HOLDS_OLD_VERSION
    assert verdict[1].startswith("Stampli captured 800.00 USD, the total of version 1; version 2")
    assert held_outcome(TOTAL, held, [V1, V2_QUEUED], LOOSE) is None  # still on its way


def test_a_capture_that_is_no_version_sent_is_a_captured_amount_difference() -> None:
    ten_dollars = Held(usd("10.00"), "capture")
    euros = Money(Decimal("2997.80"), "EUR")
    assert held_outcome(euros, ten_dollars, [], LOOSE) == (
        Outcome.CAPTURED_AMOUNT_DIFFERS,
        "Stampli captured 10.00 USD; the bill totals 2997.80 EUR in FreshBooks",
    )
    assert held_outcome(TOTAL, Held(usd("1000.02"), "capture"), [], LOOSE) is None  # tolerance


def outcome_of(fb: list[Money], stampli: StampliFacts, versions: list[Version]) -> Outcome:
    return classify(
        BILL,
        fb,
        stampli,
        delivered_at=NOW - timedelta(days=20),
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
        rules=Rules(LOOSE, 5),
        versions=versions,
    ).outcome


def test_a_bill_rejected_in_stampli_and_paid_in_freshbooks_is_rejected_but_paid() -> None:
    rejected = StampliFacts(captured=True, approval="rejected", approved_at=NOW, approver="dana")
    assert outcome_of([usd("1000.00")], rejected, []) is Outcome.REJECTED_BUT_PAID
    assert outcome_of([], rejected, []) is Outcome.IN_PROGRESS  # rejected, unpaid: nothing


def test_a_payment_difference_comes_before_what_stampli_holds() -> None:
    old = StampliFacts(captured=True, held=Held(usd("800.00"), "capture"), payments=(usd("1.00"),))
    assert outcome_of([usd("1000.00")], old, [V1, V2_SENT]) is Outcome.AMOUNT_DIFFERS
    paid_alike = StampliFacts(held=Held(usd("800.00"), "capture"), payments=(usd("1000.00"),))
    assert outcome_of([usd("1000.00")], paid_alike, [V1, V2_SENT]) is (
        Outcome.STAMPLI_HOLDS_OLD_VERSION
    )


@pytest.mark.parametrize(
    ("stampli", "void_sent", "expected", "detail"),
    [
        (
            StampliFacts(payments=(usd("520.00", "2026-03-09"),)),
            None,
            Outcome.DELETED_IN_FRESHBOOKS,
            "deleted in FreshBooks on 2026-03-20, yet Stampli paid 520.00 USD on 2026-03-09",
        ),
        (
            StampliFacts(approval="approved", approved_at=NOW),
            NOW,
            Outcome.DELETED_IN_FRESHBOOKS,
            "deleted in FreshBooks on 2026-03-20, yet Stampli approved it on 2026-04-01",
        ),
        (
            StampliFacts(approval="rejected", approved_at=NOW),
            None,
            Outcome.VOIDED,
            "deleted in FreshBooks on 2026-03-20; Stampli rejected it on 2026-04-01",
        ),
        (
            StampliFacts(captured=True),
            NOW,
            Outcome.VOIDED,
            "deleted in FreshBooks on 2026-03-20; the VOID reached Stampli on 2026-04-01, "
            "which neither approved nor paid it",
        ),
        (
            StampliFacts(captured=True),
            None,
            Outcome.DELETED_IN_FRESHBOOKS,
            "deleted in FreshBooks on 2026-03-20; no VOID reached Stampli, which still holds it",
        ),
    ],
)
def test_a_deleted_bill_is_told_with_what_stampli_did(
    stampli: StampliFacts, void_sent: datetime | None, expected: Outcome, detail: str
) -> None:
    result = classify_deleted(Deleted(BILL, date(2026, 3, 20), void_sent), stampli)
    assert (result.outcome, result.detail) == (expected, detail)
    assert result.outcome.needs_attention is (expected is not Outcome.VOIDED)


# -- Stampli's rows, read per bill -----------------------------------------------------------


def row(kind: str, **fields: Any) -> dict[str, Any]:
    base = dict.fromkeys(
        ("occurred_at", "amount", "currency_code", "payment_id", "payment_date", "approver")
    )
    base.update(export_kind=kind, stampli_invoice_id="STP-7", fb_bill_id=7, status="", line=1)
    base.update(fields)
    return base


def test_stampli_holds_the_total_of_its_latest_capture_or_approval_by_time() -> None:
    rows = [
        row("capture", amount="800.00", occurred_at="2026-03-05T10:00:00+00:00"),
        row("approval", status="approved", amount="750.00", approver="dana",
            occurred_at="2026-03-06T10:00:00+00:00"),
        row("capture", amount="700.00", occurred_at="2026-03-01T10:00:00+00:00"),  # older
        row("payment", amount="100.00", payment_id="SP-1", payment_date="2026-03-09"),
    ]  # fmt: skip
    facts, unknown = stampli_facts(rows, {7: BILL})
    assert unknown == []
    seen = facts[7]
    assert seen.held == Held(usd("750.00"), "approval")
    assert (seen.approved_amount, seen.approver) == (usd("750.00"), "dana")
    assert seen.payments == (usd("100.00", "2026-03-09", ref="SP-1"),)


def test_a_payment_voided_later_leaves_the_bill_known_but_unpaid() -> None:
    rows = [
        row("payment", amount="410.00", payment_id="SP-3", status="paid"),
        row("payment", amount="410.00", payment_id="SP-3", status="void"),
    ]
    facts, _ = stampli_facts(rows, {7: BILL})
    assert facts[7].payments == ()


# -- the fallback key ----------------------------------------------------------------------


def links(dates: dict[int, date]) -> BillLinks:
    def vendors() -> Iterator[tuple[int, str]]:
        yield 2, "Northwind Freight"

    def numbers() -> Iterator[tuple[int, int | None, str]]:
        yield from [(13, 2, "NW-DUP"), (14, 2, "NW-DUP"), (12, 2, "RC-12")]

    return BillLinks(vendors, numbers, lambda ids: {i: dates[i] for i in ids if i in dates})


def unlinked(number: str, invoice_date: date | None) -> StampliRecord:
    return StampliRecord(
        ExportKind.PAYMENT,
        "STP-1",
        None,
        vendor_name="Northwind Freight",
        invoice_number=number,
        invoice_date=invoice_date,
    )


def test_vendor_invoice_number_and_date_find_the_bill_stampli_did_not_name() -> None:
    found = links({13: date(2026, 2, 10), 14: date(2026, 2, 24)})
    assert found.bill_id(unlinked("RC-12", None)) == 12
    assert found.bill_id(unlinked("NW-DUP", date(2026, 2, 24))) == 14
    assert found.bill_id(unlinked("NW-DUP", None)) is None  # ambiguous: no bill, not a guess
    assert found.bill_id(unlinked("NW-DUP", date(2026, 1, 1))) is None


# -- a bad tolerance ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("TOLERANCE_AMOUNT", "five cents"), ("TOLERANCE_PERCENT", "-1"), ("TOLERANCE_AMOUNT", "NaN")],
)
def test_a_tolerance_that_is_no_amount_is_refused_in_one_line(
    key: str, value: str, tmp_path: Path
) -> None:
    result = run(tmp_path / "home", "reconcile", env={f"FBSTAMPLI_RECONCILE_{key}": value})
    assert result.code == 2, result.stderr
    assert one_line(result.stderr)
    assert result.stderr.startswith("fbstampli: error: invalid settings")
    assert f"reconcile.{key.lower()}): must be an amount of 0 or more" in result.stderr


def test_the_run_summary_counts_voided_bills_apart_from_those_needing_attention() -> None:
    counts = {"matched": 2, "voided": 1, "deleted_in_freshbooks": 1}
    assert reconcile_sentences(counts) == [
        "Reconciled 4 bills: 2 matched, 0 in progress, 1 voided, 1 need attention "
        "(`fbstampli reconcile`)."
    ]


def test_a_rejected_invoice_is_not_chased_for_its_captured_amount() -> None:
    wrong = Held(usd("10.00"), "capture")
    assert outcome_of([], StampliFacts(captured=True, held=wrong), []) is (
        Outcome.CAPTURED_AMOUNT_DIFFERS
    )
    rejected = StampliFacts(captured=True, held=wrong, approval="rejected")
    assert outcome_of([], rejected, []) is Outcome.IN_PROGRESS


def test_a_pending_approval_row_says_what_stampli_read_not_that_it_approved() -> None:
    rows = [row("approval", status="pending_approval", amount="10.00")]
    facts, _ = stampli_facts(rows, {7: BILL})
    assert facts[7].held == Held(usd("10.00"), "capture")
    verdict = held_outcome(TOTAL, facts[7].held, [], LOOSE)
    assert verdict is not None
    assert verdict[1].startswith("Stampli captured 10.00 USD")


def test_a_payment_stampli_voided_is_named_when_freshbooks_paid() -> None:
    sp3 = {"amount": "410.00", "payment_id": "SP-3"}
    rows = [
        row("payment", status="paid", payment_date="2026-03-09", **sp3),
        row("payment", status="void", payment_date="2026-03-12", **sp3),
    ]
    facts, _ = stampli_facts(rows, {7: BILL})
    result = classify(
        BILL,
        [usd("410.00", "2026-03-09")],
        facts[7],
        delivered_at=None,
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert (result.outcome, result.detail) == (
        Outcome.PAID_IN_FRESHBOOKS_ONLY,
        "FreshBooks paid 410.00 USD; Stampli voided its payment SP-3 (410.00 USD of 2026-03-09)",
    )
