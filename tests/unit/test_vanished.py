"""The look-up of vanished payments among the deleted (`sync/vanished.py`), against a fake
FreshBooks that counts what it is asked: nothing when nothing vanished, by bill while the
filter holds, the whole deleted list when it does not, each payment once."""

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal

from fbstampli.models import BillPayment, VisState
from fbstampli.sync.vanished import deleted_among
from tests.support.fakes import ListSource


def a_payment(fb_id: int, bill_id: int, *, deleted: bool = False) -> BillPayment:
    payment = BillPayment(fb_id, bill_id, Decimal(1), "USD", date(2026, 1, 2))
    return dataclasses.replace(payment, vis_state=VisState.DELETED) if deleted else payment


class Counting(ListSource):
    searches: int = 0
    listings: int = 0

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        self.searches += 1
        wanted = set(bill_ids)
        every = ListSource.list_bill_payments(self, vis_state=vis_state)  # not a listing asked
        yield from (payment for payment in every if payment.bill_id in wanted)

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]:
        self.listings += 1
        yield from super().list_bill_payments(vis_state=vis_state)


class IgnoresBillid(Counting):
    """`search[billid]` answered with every payment, once per bill asked (as the client does)."""

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        for _ in bill_ids:
            self.searches += 1
            yield from ListSource.list_bill_payments(self, vis_state=vis_state)


def test_nothing_vanished_asks_freshbooks_nothing() -> None:
    source = Counting(payments=[a_payment(5, 1, deleted=True)])
    assert deleted_among(source, {}) == []
    assert (source.searches, source.listings) == (0, 0)


def test_vanished_payments_are_asked_for_by_bill_while_the_filter_holds() -> None:
    source = Counting(payments=[a_payment(5, 1, deleted=True), a_payment(6, 2, deleted=True)])
    found = deleted_among(source, {5: 1})
    assert [p.fb_id for p in found] == [5]
    assert (source.searches, source.listings) == (1, 0)


def test_an_ignored_filter_lists_every_deleted_payment_and_takes_only_the_vanished() -> None:
    source = IgnoresBillid(payments=[a_payment(6, 2, deleted=True), a_payment(5, 1, deleted=True)])
    found = deleted_among(source, {5: 1})
    assert [p.fb_id for p in found] == [5]
    assert source.listings == 1  # bill 2's payment showed the filter ignored


def test_an_ignored_filter_that_shows_no_other_bill_still_gives_each_payment_once() -> None:
    source = IgnoresBillid(payments=[a_payment(5, 1, deleted=True), a_payment(7, 3, deleted=True)])
    found = deleted_among(source, {5: 1, 7: 3})
    assert sorted(p.fb_id for p in found) == [5, 7]


def test_a_payment_not_among_the_deleted_is_left_alone() -> None:
    """Missing from a listing that shifted while it was read, not deleted: nothing to say."""
    source = Counting(payments=[a_payment(5, 1)])
    assert deleted_among(source, {5: 1}) == []
