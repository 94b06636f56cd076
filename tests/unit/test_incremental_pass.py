"""The pure parts of the incremental pass: where it stops, where it starts next, snapshots."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fbstampli.models import Bill, BillLine, Kind, Vendor, VisState
from fbstampli.store.snapshots import bill_from_payload, payload_of
from fbstampli.sync.fetch import WATERMARK_MARGIN, Fetched, newer_than, next_watermarks

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def vendor(fb_id: int, minutes_ago: int | None) -> Vendor:
    stamp = None if minutes_ago is None else NOON - timedelta(minutes=minutes_ago)
    return Vendor(fb_id=fb_id, name=f"Vendor {fb_id}", updated_at=stamp)


def pages(*minutes: int | None, size: int = 3):  # type: ignore[no-untyped-def]
    """Pages of vendors `size` long, one per entry of `minutes` (minutes before noon)."""
    items = [vendor(i, m) for i, m in enumerate(minutes, start=1)]
    return [items[start : start + size] for start in range(0, len(items), size)]


class CountingPages:
    """An iterable of pages that remembers how many were asked for (each is a request)."""

    def __init__(self, source: list[list[Vendor]]) -> None:
        self.source = source
        self.served = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for page in self.source:
            self.served += 1
            yield page


def test_stops_after_the_page_that_reaches_below_the_watermark() -> None:
    listing = CountingPages(pages(1, 2, 3, 30, 40, 50, 60, 70, 80))
    taken = newer_than(listing, NOON - timedelta(minutes=35))
    assert taken is not None
    assert [v.fb_id for v in taken] == [1, 2, 3, 4]
    assert listing.served == 2


def test_object_exactly_at_the_watermark_is_taken() -> None:
    taken = newer_than(pages(1, 10, 20), NOON - timedelta(minutes=10))
    assert taken is not None
    assert [v.fb_id for v in taken] == [1, 2]


def test_order_later_than_the_row_before_means_the_sort_was_ignored() -> None:
    listing = CountingPages(pages(1, 2, 3, 90, 5, 95))
    assert newer_than(listing, NOON - timedelta(minutes=60)) is None
    assert listing.served == 2


def test_a_lucky_sorted_start_is_not_trusted_without_the_whole_page() -> None:
    # The first two rows look sorted and already below the watermark; the
    # third proves the listing is not newest first.
    assert newer_than(pages(80, 90, 1), NOON - timedelta(minutes=60)) is None


def test_missing_timestamp_means_the_order_cannot_be_trusted() -> None:
    assert newer_than(pages(1, None, 3), NOON - timedelta(minutes=60)) is None


def test_order_is_checked_across_page_boundaries() -> None:
    assert newer_than(pages(1, 2, 3, 0), NOON - timedelta(minutes=60)) is None


def test_watermark_is_the_newest_change_less_the_margin() -> None:
    fetched = Fetched(vendors=[vendor(1, 30), vendor(2, 5)])
    marks = next_watermarks(fetched, {})
    assert marks == {Kind.VENDOR: NOON - timedelta(minutes=5) - WATERMARK_MARGIN}


def test_watermark_never_moves_back() -> None:
    ahead = NOON
    marks = next_watermarks(Fetched(vendors=[vendor(1, 300)]), {Kind.VENDOR: ahead})
    assert marks[Kind.VENDOR] == ahead


def test_nothing_seen_keeps_the_watermark() -> None:
    before = {Kind.BILL: NOON, Kind.VENDOR: NOON}
    assert next_watermarks(Fetched(), before) == before


def test_bill_payload_round_trips_to_an_equal_bill() -> None:
    line = BillLine(
        list_index=1,
        description="Toner, 12 × cartridges",
        quantity=Decimal("12"),
        unit_cost=Decimal("31.50"),
        amount=Decimal("378.00"),
        category="Office",
        category_id=7,
        tax_name1="GST",
        tax_percent1=Decimal("5"),
        tax_amount1=Decimal("18.90"),
    )
    bill = Bill(
        fb_id=42,
        vendor_id=7,
        bill_number="INV-42",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        currency_code="CAD",
        amount=Decimal("378.00"),
        tax_amount=Decimal("18.90"),
        total_amount=Decimal("396.90"),
        outstanding=Decimal("396.90"),
        paid=Decimal(0),
        status="unpaid",
        description="Toner",
        lines=(line, replace(line, list_index=2, tax_name1="", tax_percent1=None)),
        vis_state=VisState.ARCHIVED,
        created_at=NOON - timedelta(days=3),
        updated_at=NOON,
        due_offset_days=30,
    )
    assert bill_from_payload(payload_of(bill)) == bill
