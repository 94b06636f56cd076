"""Every reconciliation outcome, each produced by one prepared case and checked exactly."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import fbstampli.store as store_module
from fbstampli.clock import to_utc_text
from fbstampli.config import ReconcileSettings
from fbstampli.models import Bill, BillPayment, ExportKind, Kind, StampliRecord, VisState
from fbstampli.models.outcome import Outcome
from fbstampli.report import RunReport
from fbstampli.store import Store, reconciliations
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from fbstampli.store.outbox import save_snapshot
from fbstampli.store.reconciliations import current_outcomes
from fbstampli.store.snapshots import payload_of
from fbstampli.store.stampli_files import record_json
from fbstampli.sync import matching as matching_module
from fbstampli.sync import reconcile as reconcile_module
from fbstampli.sync.matching import BillFacts, Money, StampliFacts, classify, reconcile
from fbstampli.sync.reconcile import reconcile_state
from tests.support.fakes import FakeClock, ListSource, SimpleRenderer

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
        Outcome.CURRENCY_DIFFERS,
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
def test_each_bill_gets_exactly_its_outcome(
    label: str,
    fb: list[Money],
    stampli: StampliFacts | None,
    delivered: datetime | None,
    expected: Outcome,
) -> None:
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
        Outcome.HISTORY,  # paid before go-live (sync/baseline.py)
        Outcome.ACKNOWLEDGED,
        Outcome.VOIDED,  # deleted in FreshBooks, and Stampli neither approved nor paid it
    }


# -- every outcome at once, through the whole matcher --------------------------------------


def cad(amount: str) -> Money:
    return Money(Decimal(amount), "CAD")


def test_a_prepared_account_gets_each_outcome_exactly_once_per_bill() -> None:
    bills = {n: BillFacts(n, "USD", Decimal("100.00")) for n in range(1, 10)}
    fb_payments = {
        1: [usd("100.00")],  # matched
        2: [usd("60.00"), usd("40.00")],  # partials on both sides
        3: [usd("100.00")],  # amount differs
        4: [usd("100.00")],  # paid in FreshBooks only
        8: [usd("100.00")],  # currency differs
    }
    stampli = {
        1: StampliFacts(captured=True, payments=(usd("100.00"),)),
        2: StampliFacts(captured=True, payments=(usd("25.00"), usd("75.00"))),
        3: StampliFacts(captured=True, payments=(usd("99.99"),)),
        4: StampliFacts(captured=True, approval="approved", approved_at=NOW),
        5: StampliFacts(captured=True, payments=(usd("100.00"),)),  # paid in Stampli only
        6: StampliFacts(
            captured=True, approval="approved", approved_at=NOW - timedelta(days=7)
        ),  # approved, unpaid for exactly the limit
        8: StampliFacts(captured=True, payments=(cad("100.00"),)),
        9: StampliFacts(captured=True, approval="pending_approval"),
    }
    delivered = {n: NOW - timedelta(hours=48) for n in bills}  # 7 was never captured
    results = reconcile(
        bills,
        fb_payments,
        stampli,
        [("STP-424242", 424242)],
        delivered,
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert [(r.fb_bill_id, r.outcome) for r in results] == [
        (1, Outcome.MATCHED),
        (2, Outcome.MATCHED),
        (3, Outcome.AMOUNT_DIFFERS),
        (4, Outcome.PAID_IN_FRESHBOOKS_ONLY),
        (5, Outcome.PAID_IN_STAMPLI_ONLY),
        (6, Outcome.APPROVED_NOT_PAID),
        (7, Outcome.NOT_CAPTURED),
        (8, Outcome.CURRENCY_DIFFERS),
        (9, Outcome.IN_PROGRESS),
        (424242, Outcome.UNKNOWN_TO_FRESHBOOKS),
    ]
    by_bill = {r.fb_bill_id: r for r in results}
    assert by_bill[8].detail == (
        "FreshBooks paid 100.00 USD, Stampli paid 100.00 CAD: amounts in different currencies"
    )
    assert by_bill[3].detail == "FreshBooks paid 100.00 USD, Stampli paid 99.99 USD"


@pytest.mark.parametrize(
    ("fb", "stampli", "expected"),
    [
        ([usd("100")], [usd("100.00")], Outcome.MATCHED),  # scale does not matter
        ([usd("50"), cad("50")], [cad("50"), usd("50")], Outcome.MATCHED),
        ([usd("50"), cad("50")], [usd("100")], Outcome.AMOUNT_DIFFERS),
        ([usd("100"), usd("-100")], [usd("0")], Outcome.MATCHED),  # a void as a negative
        ([usd("0.1"), usd("0.2")], [usd("0.3")], Outcome.MATCHED),  # Decimal, not float
    ],
)
def test_amounts_are_compared_per_currency_as_decimals(
    fb: list[Money], stampli: list[Money], expected: Outcome
) -> None:
    result = classify(
        BILL,
        fb,
        StampliFacts(captured=True, payments=tuple(stampli)),
        delivered_at=None,
        now=NOW,
        approved_unpaid_days=7,
        uncaptured_hours=24,
    )
    assert result.outcome is expected


# -- the orchestration over a real store ------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW, may_sleep=False)  # reconcile never sleeps


def fb_bill(fb_id: int, currency: str = "USD", **changes: Any) -> Bill:
    return Bill(
        fb_id=fb_id,
        vendor_id=1,
        bill_number=f"INV-{fb_id}",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        currency_code=currency,
        amount=Decimal(100),
        tax_amount=Decimal(0),
        total_amount=Decimal(100),
        outstanding=Decimal(100),
        paid=Decimal(0),
        status="unpaid",
        **changes,
    )


def pushed(store: Store, source: ListSource) -> ListSource:
    """Store the source's bills and payments as push-bills' snapshots: reconcile's FreshBooks."""
    with store.transaction():
        for kind, objects in ((Kind.BILL, source.bills), (Kind.PAYMENT, source.payments)):
            for obj in objects:
                save_snapshot(
                    store,
                    kind=kind,
                    fb_id=obj.fb_id,
                    updated_at=None,
                    vis_state=int(obj.vis_state),
                    content_hash=f"h{obj.fb_id}",
                    payload=payload_of(obj),
                )
    return source


# Live long before these bills were paid: none of them is go-live history (sync/baseline.py).
LONG_LIVE = ReconcileSettings(since="2000-01-01")


def reconciled(store: Store, source: ListSource, *, run_id: int, report: RunReport) -> None:
    pushed(store, source)
    reconcile_state(store, lambda: source, LONG_LIVE, now=NOW, run_id=run_id, report=report)


def outcomes(store: Store) -> list[tuple[int | None, str]]:
    return [(row["fb_bill_id"], row["outcome"]) for row in current_outcomes(store)]


def keep(store: Store, *records: StampliRecord) -> None:
    with store.transaction():
        file_id = store.execute(
            "INSERT INTO stampli_files (name, sha256, state, downloaded_at) "
            "VALUES ('x.csv', 'x', 'processed', '2026-11-25T00:00:00Z')"
        )
        store.execute_many(
            "INSERT INTO stampli_records (file_id, line, export_kind, stampli_invoice_id, "
            "fb_bill_id, status, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    file_id,
                    line,
                    r.export_kind.value,
                    r.stampli_invoice_id,
                    r.fb_bill_id,
                    r.status,
                    record_json(r),
                )
                for line, r in enumerate(records, start=2)
            ],
        )


def delivered(store: Store, fb_id: int, at: datetime) -> None:
    with store.transaction():
        store.execute(
            "INSERT INTO deliveries (kind, fb_id, content_hash, rows, status, created_at, "
            "updated_at) VALUES ('bill', ?, ?, '[]', 'delivered', ?, ?)",
            (fb_id, f"h{fb_id}", to_utc_text(at), to_utc_text(at)),
        )


def capture(bill_id: int) -> StampliRecord:
    return StampliRecord(ExportKind.CAPTURE, f"STP-{bill_id:06d}", bill_id, "captured")


def paid(
    bill_id: int, payment_id: str, amount: str, currency: str = "", status: str = "paid"
) -> StampliRecord:
    return StampliRecord(
        ExportKind.PAYMENT,
        f"STP-{bill_id:06d}",
        bill_id,
        status,
        payment_id=payment_id,
        amount=Decimal(amount),
        currency_code=currency,
    )


def approval(bill_id: int, status: str, at: datetime) -> StampliRecord:
    return StampliRecord(ExportKind.APPROVAL, f"STP-{bill_id:06d}", bill_id, status, occurred_at=at)


def test_reconcile_state_stores_every_result_and_audits_only_what_needs_a_look(
    store: Store,
) -> None:
    source = ListSource(
        bills=[fb_bill(n) for n in range(1, 8)] + [fb_bill(8, vis_state=VisState.DELETED)],
        payments=[
            BillPayment(101, 1, Decimal("100.00"), "", date(2026, 11, 20)),  # bill's currency
            BillPayment(102, 2, Decimal("100.00"), "USD", date(2026, 11, 20)),
            BillPayment(103, 3, Decimal("100.00"), "USD", date(2026, 11, 20)),
        ],
    )
    for n in range(1, 8):
        delivered(store, n, NOW - timedelta(days=3))
    keep(
        store,
        *[capture(n) for n in (1, 2, 3, 4, 5, 8)],
        paid(1, "P1", "60.00"),  # no currency: the bill's
        paid(1, "P2", "40.00", "USD"),
        paid(2, "P3", "100.00", "USD"),
        paid(2, "P3", "90.00", "USD"),  # the same payment exported again, corrected
        paid(4, "P4", "100.00", "USD"),
        paid(4, "P4", "100.00", "USD", status="void"),  # later voided: unpaid after all
        approval(5, "approved", NOW - timedelta(days=10)),
        approval(5, "rejected", NOW - timedelta(days=20)),  # older, arrived later
        paid(6, "P6", "100.00", "USD"),
        paid(9, "P9", "1.00", "USD"),
    )
    report = RunReport("reconcile")
    reconciled(store, source, run_id=7, report=report)

    assert outcomes(store) == [
        (1, "matched"),
        (2, "amount_differs"),
        (3, "paid_in_freshbooks_only"),
        (4, "in_progress"),
        (5, "approved_not_paid"),
        (6, "paid_in_stampli_only"),
        (7, "not_captured"),
        (8, "deleted_in_freshbooks"),  # deleted in FreshBooks, no VOID sent, Stampli holds it
        (9, "unknown_to_freshbooks"),
    ]
    assert report.attention is True
    rows = store.query("SELECT run_id FROM reconcile_outcomes")
    assert {row["run_id"] for row in rows} == {7}
    audited = store.query("SELECT fb_id, action FROM audit WHERE run_id = 7 ORDER BY fb_id")
    assert [(row["fb_id"], row["action"]) for row in audited] == [
        (2, "reconcile_amount_differs"),
        (3, "reconcile_paid_in_freshbooks_only"),
        (5, "reconcile_approved_not_paid"),
        (6, "reconcile_paid_in_stampli_only"),
        (7, "reconcile_not_captured"),
        (8, "reconcile_deleted_in_freshbooks"),
        (9, "reconcile_unknown_to_freshbooks"),
    ]


def test_nothing_to_look_at_means_no_attention(store: Store) -> None:
    source = ListSource(
        bills=[fb_bill(1)],
        payments=[BillPayment(101, 1, Decimal("100.00"), "USD", date(2026, 11, 20))],
    )
    keep(store, capture(1), paid(1, "P1", "100.00", "USD"))
    report = RunReport("reconcile")
    reconciled(store, source, run_id=1, report=report)
    assert report.counts == {"matched": 1}
    assert report.attention is False


def test_the_audit_trail_gets_a_reconcile_line_only_when_a_bills_outcome_changes(
    store: Store,
) -> None:
    bills = [fb_bill(1), fb_bill(2)]
    unpaid = ListSource(bills=bills, payments=[])
    paid_both = ListSource(
        bills=bills,
        payments=[BillPayment(101, 1, Decimal("100.00"), "USD", date(2026, 11, 20))],
    )
    delivered(store, 1, NOW - timedelta(days=3))
    delivered(store, 2, NOW - timedelta(days=3))
    keep(store, capture(2), paid(1, "P1", "100.00", "USD"))

    def audited(run_id: int) -> list[tuple[int, str]]:
        rows = store.query(
            "SELECT fb_id, action FROM audit WHERE run_id = ? ORDER BY fb_id", (run_id,)
        )
        return [(row["fb_id"], row["action"]) for row in rows]

    for run_id in (1, 2, 3):  # the same facts three times: said once
        reconciled(store, unpaid, run_id=run_id, report=RunReport("r"))
    assert audited(1) == [(1, "reconcile_paid_in_stampli_only")]
    assert audited(2) == []
    assert audited(3) == []
    reconciled(store, paid_both, run_id=4, report=RunReport("r"))
    assert audited(4) == [(1, "reconcile_matched")]  # resolved: that change is recorded


class CountingSource(ListSource):
    """A ListSource that counts the look-ups reconcile made (a look-up asks for the live
    bills, then for the deleted among those missing)."""

    asked: int = 0

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]:
        self.asked += vis_state is None
        return super().get_bills(ids, vis_state=vis_state)


def never_asked() -> ListSource:
    raise AssertionError("reconcile asked FreshBooks although it had read every bill")


def test_a_reconcile_asks_freshbooks_nothing_when_it_read_every_bill_stampli_names(
    store: Store,
) -> None:
    source = pushed(store, ListSource(bills=[fb_bill(n) for n in range(1, 41)]))
    keep(store, *[capture(n) for n in range(1, 41)], paid(3, "P3", "100.00", "USD"))
    report = RunReport("reconcile")
    reconcile_state(store, never_asked, ReconcileSettings(), now=NOW, run_id=1, report=report)
    assert report.counts == {"in_progress": 39, "paid_in_stampli_only": 1}
    assert source.bills  # the facts came from the snapshots alone


def test_a_bill_stampli_names_but_fbstampli_never_read_is_looked_up_when_new_then_daily(
    store: Store,
) -> None:
    """Left out by --since, say: FreshBooks has it, with a payment; and 99 is nowhere."""
    older = fb_bill(30)
    source = CountingSource(
        bills=[older], payments=[BillPayment(301, 30, Decimal("100.00"), "USD", date(2026, 1, 5))]
    )
    keep(store, capture(30), paid(30, "P30", "100.00", "USD"), paid(99, "P99", "5.00", "USD"))

    def run(run_id: int, now: datetime) -> None:
        reconcile_state(
            store,
            lambda: source,
            ReconcileSettings(),
            now=now,
            run_id=run_id,
            report=RunReport("r"),
        )

    run(1, NOW)
    assert source.asked == 1
    assert outcomes(store) == [(30, "matched"), (99, "unknown_to_freshbooks")]
    run(2, NOW + timedelta(hours=1))  # nothing new: nothing asked, the outcomes stand
    assert source.asked == 1
    assert outcomes(store) == [(30, "matched"), (99, "unknown_to_freshbooks")]
    source.payments = []  # the payment was deleted in FreshBooks
    run(3, NOW + timedelta(hours=25))  # the daily look-up sees it
    assert source.asked == 2
    assert outcomes(store) == [(30, "paid_in_stampli_only"), (99, "unknown_to_freshbooks")]
    keep(store, paid(30, "P30", "100.00", "USD", status="void"))  # Stampli voids its payment
    run(4, NOW + timedelta(hours=26))  # a new record on an unread bill: asked at once
    assert source.asked == 3
    assert outcomes(store) == [(30, "in_progress"), (99, "unknown_to_freshbooks")]


def test_an_outcome_is_written_only_when_it_changes(store: Store) -> None:
    bills = [fb_bill(n) for n in range(1, 6)]
    for n in range(1, 6):
        delivered(store, n, NOW - timedelta(days=3))
    keep(store, *[capture(n) for n in range(1, 6)], paid(2, "P2", "100.00", "USD"))
    reconciled(store, ListSource(bills=bills), run_id=1, report=RunReport("r"))
    reconciled(store, ListSource(bills=bills), run_id=2, report=RunReport("r"))
    payment = BillPayment(201, 2, Decimal("100.00"), "USD", date(2026, 11, 20))
    reconciled(store, ListSource(bills=bills, payments=[payment]), run_id=3, report=RunReport("r"))
    rows = store.query("SELECT fb_bill_id, outcome, run_id FROM reconcile_outcomes ORDER BY 1")
    assert [tuple(row) for row in rows] == [
        (1, "in_progress", 1),
        (2, "matched", 3),  # the only bill that changed
        (3, "in_progress", 1),
        (4, "in_progress", 1),
        (5, "in_progress", 1),
    ]
    assert reconciliations.latest_outcomes(store) == (3, {"in_progress": 4, "matched": 1})


def test_a_bill_keeps_one_outcome_when_stampli_gives_it_an_invoice_id(store: Store) -> None:
    source = ListSource(bills=[fb_bill(1)])
    delivered(store, 1, NOW - timedelta(days=3))
    reconciled(store, source, run_id=1, report=RunReport("r"))
    assert store.query("SELECT stampli_invoice_id FROM reconcile_outcomes")[0][0] == ""
    keep(store, capture(1))
    reconciled(store, source, run_id=2, report=RunReport("r"))
    rows = store.query("SELECT fb_bill_id, stampli_invoice_id, outcome FROM reconcile_outcomes")
    assert [tuple(row) for row in rows] == [(1, "STP-000001", "in_progress")]


def test_ranges_of_bills_reach_the_same_outcomes_as_one_range(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids in the gaps between ranges, past the last bill and none at all are all reached."""

    def outcome_rows(range_size: int, folder: Path) -> list[tuple[Any, ...]]:
        monkeypatch.setattr(reconcile_module, "RANGE", range_size)
        folder.mkdir()
        store = Store.create(folder / "state.db", StateKey(new_key_hex(), KeySource.FILE), clock)
        bills = [fb_bill(n) for n in range(10, 200, 10)] + [fb_bill(55, vis_state=VisState.DELETED)]
        payments = [
            BillPayment(n, n, Decimal("100.00"), "USD", date(2026, 11, 1)) for n in (20, 90)
        ]
        pushed(store, ListSource(bills=bills, payments=payments))
        for n in range(10, 200, 30):
            delivered(store, n, NOW - timedelta(days=3))
        keep(
            store,
            *[capture(n) for n in (10, 20, 55, 90, 150)],
            paid(20, "P20", "100.00", "USD"),
            paid(55, "P55", "1.00", "USD"),  # a deleted bill
            paid(15, "P15", "1.00", "USD"),  # in a gap between bills
            paid(5000, "P5000", "1.00", "USD"),  # past the last bill
            StampliRecord(ExportKind.PAYMENT, "STP-NONE", None, "paid", amount=Decimal(1)),
        )
        reconcile_state(
            store,
            lambda: ListSource(),
            ReconcileSettings(),
            now=NOW,
            run_id=1,
            report=RunReport("r"),
        )
        rows = [tuple(row.values()) for row in map(dict, current_outcomes(store))]
        store.close()
        return rows

    whole = outcome_rows(10_000, tmp_path / "whole")
    assert outcome_rows(3, tmp_path / "ranges") == whole
    assert len(whole) == 14  # 11 bills fbstampli sent or Stampli paid, 3 Stampli-only
    assert [row[0] for row in whole[-3:]] == [15, 5000, None]  # Stampli-only, by invoice
    assert (55, "deleted_in_freshbooks") in [(row[0], row[2]) for row in whole]  # paid, deleted


def test_a_reconcile_killed_half_way_is_finished_by_the_next_with_each_change_audited_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ListSource(bills=[fb_bill(n) for n in range(1, 10)])
    for n in range(1, 10):
        delivered(store, n, NOW - timedelta(days=3))
    reconciled(store, source, run_id=1, report=RunReport("r"))
    keep(store, *[paid(n, f"P{n}", "100.00", "USD") for n in range(1, 10)])
    monkeypatch.setattr(reconcile_module, "RANGE", 2)
    calls = iter(range(100))
    original = reconciliations.outcomes

    def killed(*args: Any) -> Any:
        if next(calls) == 3:
            raise KeyboardInterrupt  # the kill, after three sets of bills were settled
        return original(*args)

    monkeypatch.setattr(reconciliations, "outcomes", killed)
    with pytest.raises(KeyboardInterrupt):
        reconciled(store, source, run_id=2, report=RunReport("r"))
    settled = [bill for bill, outcome in outcomes(store) if outcome == "paid_in_stampli_only"]
    assert settled == [1, 2, 3, 4, 5, 6]  # each set whole: outcomes with their audit lines
    monkeypatch.setattr(reconciliations, "outcomes", original)
    reconciled(store, source, run_id=3, report=RunReport("r"))
    assert set(outcomes(store)) == {(n, "paid_in_stampli_only") for n in range(1, 10)}
    audited = store.query(
        "SELECT fb_id, run_id FROM audit WHERE action = 'reconcile_paid_in_stampli_only' "
        "ORDER BY fb_id"
    )
    assert [tuple(row) for row in audited] == [(n, 2) for n in range(1, 7)] + [
        (n, 3) for n in range(7, 10)
    ]  # once each: the rerun found the first six already settled


def test_an_older_state_keeps_its_latest_outcomes_and_drops_the_per_run_history(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = StateKey(new_key_hex(), KeySource.FILE)
    monkeypatch.setattr(store_module, "latest_version", lambda: 1)
    old = Store.create(tmp_path / "state.db", key, clock)
    with old.transaction():
        old.execute_many(
            "INSERT INTO reconciliations (run_id, fb_bill_id, stampli_invoice_id, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (4, 1, "STP-1", "matched", "old"),
                (9, 1, "STP-1", "amount_differs", "newest"),
                (9, None, "STP-X", "unknown_to_freshbooks", "newest"),
            ],
        )
    old.close()
    monkeypatch.undo()
    new = Store.open(tmp_path / "state.db", key, clock)
    rows = new.query(
        "SELECT fb_bill_id, stampli_invoice_id, outcome, detail, run_id "
        "FROM reconcile_outcomes ORDER BY id"
    )
    assert [tuple(row) for row in rows] == [
        (1, "STP-1", "amount_differs", "newest", 9),
        (None, "STP-X", "unknown_to_freshbooks", "newest", 9),
    ]
    assert reconciliations.latest_outcomes(new) == (
        9,
        {"amount_differs": 1, "unknown_to_freshbooks": 1},
    )
    new.close()


class Classified:
    """Counts the bills `matching.classify` was asked about: what a reconcile's CPU follows."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = matching_module.classify

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(matching_module, "classify", counted)

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def settled_history(store: Store, bills: int) -> ListSource:
    """`bills` bills sent days ago, captured and paid alike in both: every one matched."""
    source = ListSource(
        bills=[fb_bill(n) for n in range(1, bills + 1)],
        payments=[
            BillPayment(n, n, Decimal("100.00"), "USD", date(2026, 11, 1))
            for n in range(1, bills + 1)
        ],
    )
    pushed(store, source)
    for n in range(1, bills + 1):
        delivered(store, n, NOW - timedelta(days=3))
    keep(store, *[r for n in range(1, bills + 1) for r in (capture(n), paid(n, f"P{n}", "100"))])
    return source


def test_a_quiet_reconcile_classifies_only_the_bills_whose_facts_changed(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled_history(store, 1000)
    classified = Classified(monkeypatch)

    def run(run_id: int, now: datetime, settings: ReconcileSettings | None = None) -> None:
        clock.advance(minutes=15)
        reconcile_state(store, never_asked, settings or LONG_LIVE, now=now,
                        run_id=run_id, report=RunReport("r"))  # fmt: skip

    run(1, NOW)
    assert classified.take() == 1000  # the first reconcile: every bill
    run(2, NOW + timedelta(minutes=15))
    assert classified.take() == 0  # nothing changed, nothing time can change

    clock.advance(minutes=1)
    keep(store, paid(500, "P500", "100", status="void"))  # Stampli voids one payment
    with store.transaction():  # and push saw FreshBooks correct another
        corrected = BillPayment(501, 501, Decimal("90.00"), "USD", date(2026, 11, 1))
        save_snapshot(store, kind=Kind.PAYMENT, fb_id=501, updated_at=None, vis_state=0,
                      content_hash="h2", payload=payload_of(corrected))  # fmt: skip
    run(3, NOW + timedelta(minutes=30))
    assert classified.take() == 2
    changed = {bill: outcome for bill, outcome in outcomes(store) if bill in (499, 500, 501, 502)}
    assert changed == {
        499: "matched",
        500: "paid_in_freshbooks_only",
        501: "amount_differs",
        502: "matched",
    }

    clock.advance(minutes=1)
    keep(store, paid(1, "P1", "100", status="void"), paid(1000, "P1000", "100", status="void"))
    run(35, NOW + timedelta(minutes=40))
    assert classified.take() == 2  # the oldest bill and the newest: nothing between is read

    run(
        4,
        NOW + timedelta(minutes=45),
        ReconcileSettings(approved_unpaid_days=3, since="2000-01-01"),
    )
    assert classified.take() == 1000  # other settings: every bill again
    run(5, NOW + timedelta(hours=25))
    assert classified.take() == 1000  # and once a day, the safety net


def test_a_bill_in_progress_is_classified_again_when_time_alone_can_turn_it(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    settled_history(store, 50)
    pushed(store, ListSource(bills=[fb_bill(n) for n in range(60, 81)]))
    delivered(store, 60, NOW - timedelta(hours=1))  # sent an hour ago: in progress
    for n in range(61, 81):  # sent ten minutes ago: in progress too, and not due as soon
        delivered(store, n, NOW - timedelta(minutes=10))
    classified = Classified(monkeypatch)
    clock.advance(minutes=15)
    reconcile_state(store, never_asked, ReconcileSettings(), now=NOW, run_id=1,
                    report=RunReport("r"))  # fmt: skip
    assert (60, "in_progress") in outcomes(store)
    classified.take()
    clock.advance(hours=2)
    reconcile_state(
        store,
        never_asked,
        ReconcileSettings(),
        now=NOW + timedelta(hours=23),
        run_id=2,
        report=RunReport("r"),
    )  # a day since it was sent; fmt: skip
    assert classified.take() == 1  # only the bill whose time has come
    assert (60, "not_captured") in outcomes(store)  # and it did: a day with no capture
    assert (61, "in_progress") in outcomes(store)


@pytest.mark.parametrize(
    ("stampli", "delivered_at"),
    [
        (None, NOW - timedelta(hours=2)),  # sent, never captured
        (StampliFacts(captured=True), NOW - timedelta(hours=2)),  # captured: time turns nothing
        (StampliFacts(captured=True, approval="approved", approved_at=NOW), None),
        (StampliFacts(approval="approved", approved_at=NOW - timedelta(days=1)), NOW),
        (StampliFacts(captured=True, approval="rejected", approved_at=NOW), NOW),
        (None, None),
    ],
)
def test_the_moment_time_turns_an_in_progress_bill_is_the_moment_classify_turns_it(
    stampli: StampliFacts | None, delivered_at: datetime | None
) -> None:
    def outcome(at: datetime) -> Outcome:
        return classify(BILL, [], stampli, delivered_at=delivered_at, now=at,
                        approved_unpaid_days=7, uncaptured_hours=24).outcome  # fmt: skip

    assert outcome(NOW) is Outcome.IN_PROGRESS
    moment = matching_module.changes_by_time_at(
        stampli, delivered_at=delivered_at, approved_unpaid_days=7, uncaptured_hours=24
    )
    if moment is None:
        assert outcome(NOW + timedelta(days=3650)) is Outcome.IN_PROGRESS
    else:
        assert outcome(moment - timedelta(seconds=1)) is Outcome.IN_PROGRESS
        assert outcome(moment) is not Outcome.IN_PROGRESS


class AmountBlindRenderer(SimpleRenderer):
    """A Stampli layout without amounts: a corrected payment renders the same rows."""

    def rows(self, obj: Any, vendor_names: Any, bills: Any) -> list[tuple[str, ...]]:
        return [(type(obj).__name__, str(obj.fb_id))]

    def content_hash(self, rows: Any) -> str:
        return repr(rows)


def test_a_corrected_amount_reaches_reconcile_though_the_layout_shows_no_amount(
    store: Store, clock: FakeClock
) -> None:
    from fbstampli.sync.fetch import Fetched
    from fbstampli.sync.ingest import ingest

    def pushed_with_blind_layout(payment: BillPayment) -> None:
        clock.advance(minutes=15)
        ingest(store, Fetched(bills=[fb_bill(1)], payments=[payment]),
               AmountBlindRenderer(),  # type: ignore[arg-type]
               since=None, send_payments=True, report_deleted=False, run_id=None,
               report=RunReport("push-bills"))  # fmt: skip

    delivered(store, 1, NOW - timedelta(days=3))
    keep(store, capture(1), paid(1, "P1", "100.00", "USD"))
    pushed_with_blind_layout(BillPayment(101, 1, Decimal("90.00"), "USD", date(2026, 11, 20)))
    reconcile_state(store, never_asked, ReconcileSettings(), now=NOW, run_id=1,
                    report=RunReport("r"))  # fmt: skip
    assert outcomes(store) == [(1, "amount_differs")]
    queued = store.query("SELECT count(*) FROM deliveries WHERE kind = 'bill_payment'")[0][0]

    pushed_with_blind_layout(BillPayment(101, 1, Decimal("100.00"), "USD", date(2026, 11, 20)))
    assert store.query("SELECT count(*) FROM deliveries WHERE kind = 'bill_payment'")[0][0] == (
        queued  # the same rows: nothing sent again
    )
    clock.advance(minutes=1)
    reconcile_state(store, never_asked, ReconcileSettings(), now=NOW, run_id=2,
                    report=RunReport("r"))  # fmt: skip
    assert outcomes(store) == [(1, "matched")]  # yet reconcile saw the correction


def test_a_bill_never_read_that_freshbooks_deleted_is_deleted_not_unknown(store: Store) -> None:
    """Left out by --since and deleted since: Stampli paid it; FreshBooks has it deleted."""
    source = ListSource(bills=[fb_bill(40, vis_state=VisState.DELETED)])
    keep(store, capture(40), paid(40, "P40", "100.00", "USD"), paid(99, "P99", "5.00", "USD"))
    reconcile_state(
        store, lambda: source, ReconcileSettings(), now=NOW, run_id=1, report=RunReport("r")
    )
    assert outcomes(store) == [(40, "deleted_in_freshbooks"), (99, "unknown_to_freshbooks")]
