"""First sync and sweep in slices: the same outcome as reading everything at once.

The slice sizes are shrunk so a handful of objects spans many slices; what is
proved is the behaviour across slice boundaries (vendor names, `--since`,
file planning), not memory itself (that is bench/bench_push.py's figure).
"""

from datetime import date

import pytest

from fbstampli.store import Store
from fbstampli.store.outbox import batch
from fbstampli.sync import deliver, fetch
from fbstampli.sync.push import push
from tests.support.fakes import FakeClock, ListSource, MemoryTransport
from tests.unit.test_push_engine import bill, context, delivered_rows, inbound, payment, vendor


@pytest.fixture
def tiny_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "CHUNK", 2)
    monkeypatch.setattr(deliver, "PENDING_SLICE", 3)


@pytest.fixture
def remote() -> MemoryTransport:
    return MemoryTransport()


def many() -> ListSource:
    return ListSource(
        vendors=[vendor(v) for v in range(1, 6)],
        bills=[bill(10 + i, 1 + i % 5, issue_date=date(2026, 1 + i, 1)) for i in range(12)],
        payments=[payment(100 + i, 10 + i) for i in range(12)],
    )


def test_sliced_first_sync_delivers_every_object_once_with_its_vendor_name(
    store: Store, remote: MemoryTransport, clock: FakeClock, tiny_slices: None
) -> None:
    source = many()
    push(context(store, source, remote, clock, max_rows_per_file=4))
    expected = (
        [f"{v.fb_id},{v.name}" for v in source.vendors]
        + [f"{b.fb_id},Vendor {b.vendor_id},{b.total_amount}" for b in source.bills]
        + [f"{p.fb_id},{p.bill_id},{p.amount}" for p in source.payments]
    )
    assert sorted(delivered_rows(remote)) == sorted(expected)
    assert len(inbound(remote)) == 2 + 3 + 3  # files of at most 4 rows, kinds apart


def test_files_planned_from_slices_keep_queue_order(
    store: Store, remote: MemoryTransport, clock: FakeClock, tiny_slices: None
) -> None:
    push(context(store, many(), remote, clock, max_rows_per_file=4))
    bill_files = [
        [int(line.split(",")[0]) for line in data.decode().splitlines()]
        for name, data in sorted(inbound(remote).items())
        if name.endswith("bills.csv")
    ]
    assert bill_files == [[10, 11, 12, 13], [14, 15, 16, 17], [18, 19, 20, 21]]
    assert batch(store, 1) is not None


def test_since_leaves_out_payments_of_bills_read_in_an_earlier_slice(
    store: Store, remote: MemoryTransport, clock: FakeClock, tiny_slices: None
) -> None:
    source = many()
    push(context(store, source, remote, clock), since="2026-07-01")
    kept = {b.fb_id for b in source.bills if b.issue_date >= date(2026, 7, 1)}
    rows = [line.split(",") for line in delivered_rows(remote)]
    paid = {int(r[1]) for r in rows if int(r[0]) >= 100}
    assert paid == kept
    assert {int(r[0]) for r in rows if 10 <= int(r[0]) < 100} == kept
