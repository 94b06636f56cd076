"""The payments fast path's decisions against a real store and a fake FreshBooks."""

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from fbstampli.models import Bill, BillPayment, VisState
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.sync import payments as payments_module
from fbstampli.sync.payments import disproval, follows_bills, payments_of_moved
from tests.support.fakes import ListSource

MOMENT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def a_bill(fb_id: int) -> Bill:
    zero = Decimal(0)
    return Bill(
        fb_id=fb_id, vendor_id=1, bill_number=f"B{fb_id}", issue_date=date(2026, 1, 1),
        due_date=date(2026, 2, 1), currency_code="USD", amount=zero, tax_amount=zero,
        total_amount=zero, outstanding=zero, paid=zero, status="unpaid", updated_at=MOMENT,
    )  # fmt: skip


def a_payment(fb_id: int, bill_id: int) -> BillPayment:
    return BillPayment(fb_id, bill_id, Decimal(1), "USD", date(2026, 1, 2))


class IgnoresBillidSearch(ListSource):
    """An API answering `search[billid]` with every payment, filter or not."""

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        yield from self.list_bill_payments(vis_state=vis_state)


def test_moved_bill_payments_come_from_the_billid_search(store: Store) -> None:
    source = ListSource(bills=[a_bill(1)], payments=[a_payment(5, 1), a_payment(6, 2)])
    payments = payments_of_moved(store, source, source.bills, RunReport("push-bills"))
    assert payments is not None
    assert [p.fb_id for p in payments] == [5]
    assert follows_bills(store)


def test_ignored_billid_search_disproves_the_fast_path_once(store: Store) -> None:
    source = IgnoresBillidSearch(bills=[a_bill(1)], payments=[a_payment(5, 1), a_payment(6, 2)])
    report = RunReport("push-bills")
    assert payments_of_moved(store, source, source.bills, report) is None
    assert not follows_bills(store)
    assert "search[billid]" in (disproval(store) or "")
    assert len(report.notes) == 1
    again = RunReport("push-bills")
    assert payments_of_moved(store, source, source.bills, again) is None
    assert again.notes == []


class CountingSource(ListSource):
    """Counts the billid searches and whole listings asked of it."""

    searches: int = 0
    listings: int = 0

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        self.searches += 1
        yield from super().bill_payments_of(bill_ids, vis_state=vis_state)

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]:
        self.listings += 1
        yield from super().list_bill_payments(vis_state=vis_state)


def test_a_bulk_move_lists_the_payments_once_instead_of_a_search_per_bill(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(payments_module, "MANY_MOVED", 3)
    source = CountingSource(
        bills=[a_bill(i) for i in range(1, 6)],
        payments=[a_payment(10 + i, i) for i in range(1, 6)] + [a_payment(99, 42)],
    )
    found = payments_of_moved(store, source, source.bills, RunReport("push-bills"))
    assert found is not None
    assert sorted(p.fb_id for p in found) == [11, 12, 13, 14, 15]  # only the moved bills'
    assert (source.listings, source.searches) == (1, 0)
