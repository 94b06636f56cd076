"""Queueing a slice's deliveries at once decides exactly as queueing them one by one."""

import itertools
from pathlib import Path

from fbstampli.models import Kind
from fbstampli.store import Store
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from fbstampli.store.outbox import DeliveryStatus, Queued, queue_deliveries, queue_delivery
from tests.support.fakes import FakeClock

# Every earlier history an object may have: no delivery, or one or two of versions A/B
# in each status.
STATUSES = list(DeliveryStatus)
HISTORIES: list[tuple[tuple[str, DeliveryStatus], ...]] = [
    (),
    *(((version, status),) for version in "AB" for status in STATUSES),
    *(
        (("A", first), (version, second))
        for first, second in itertools.product(STATUSES, STATUSES)
        for version in "AB"
    ),
]


def with_histories(store: Store) -> list[Queued]:
    """Store each history for its own bill; ask to queue version A of each, a vendor too."""
    items = []
    with store.transaction():
        for fb_id, history in enumerate(HISTORIES, start=1):
            for resend, (version, status) in enumerate(history):
                store.execute(
                    "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, "
                    "created_at, updated_at) VALUES ('bill', ?, ?, ?, '[]', ?, 'x', 'x')",
                    (fb_id, version, resend, status.value),
                )
            items.append(Queued(Kind.BILL, fb_id, "A", [("row", str(fb_id))]))
    items.append(Queued(Kind.VENDOR, 1, "A", [("vendor",)]))
    return items


def deliveries(store: Store) -> list[tuple[object, ...]]:
    return [
        tuple(row)
        for row in store.query(
            "SELECT id, kind, fb_id, content_hash, resend, rows, status, updated_at "
            "FROM deliveries ORDER BY id"
        )
    ]


def test_queueing_a_slice_at_once_writes_what_one_by_one_writes(
    tmp_path: Path, clock: FakeClock
) -> None:
    one = Store.create(tmp_path / "one.db", StateKey(new_key_hex(), KeySource.FILE), clock)
    many = Store.create(tmp_path / "many.db", StateKey(new_key_hex(), KeySource.FILE), clock)
    items = with_histories(one)
    assert with_histories(many) == items
    with one.transaction():
        singly = [
            queue_delivery(
                one, kind=i.kind, fb_id=i.fb_id, content_hash=i.content_hash, rows=i.rows
            )
            is not None
            for i in items
        ]
    with many.transaction():
        at_once = queue_deliveries(many, items)
    assert at_once == singly
    assert True in singly  # both outcomes were exercised
    assert False in singly
    assert deliveries(many) == deliveries(one)
    one.close()
    many.close()


def test_an_object_named_twice_in_a_slice_is_queued_once(store: Store) -> None:
    items = [Queued(Kind.BILL, 7, "A", [("a",)]), Queued(Kind.BILL, 7, "A", [("a",)])]
    with store.transaction():
        assert queue_deliveries(store, items) == [True, False]


def test_an_object_changed_and_changed_back_before_its_change_left_is_not_sent_again(
    store: Store,
) -> None:
    """Delivered as A, changed to B whose upload failed, changed back to A: Stampli holds A,
    so nothing is queued and B, never sent, is superseded (found by the exactly-once machine)."""
    with store.transaction():
        for version, status in (("A", DeliveryStatus.DELIVERED), ("B", DeliveryStatus.FAILED)):
            store.execute(
                "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, "
                "created_at, updated_at) VALUES ('vendor', 1, ?, 0, '[]', ?, 'x', 'x')",
                (version, status.value),
            )
        assert queue_deliveries(store, [Queued(Kind.VENDOR, 1, "A", [("Acme",)])]) == [False]
    statuses = [row["status"] for row in store.query("SELECT status FROM deliveries ORDER BY id")]
    assert statuses == [DeliveryStatus.DELIVERED, DeliveryStatus.SUPERSEDED]


def test_a_version_on_its_way_still_makes_the_one_before_it_a_change(store: Store) -> None:
    """Delivered as A, B in a batch being uploaded (it may arrive): A again is a change."""
    with store.transaction():
        for version, status in (("A", DeliveryStatus.DELIVERED), ("B", DeliveryStatus.PLANNED)):
            store.execute(
                "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, "
                "created_at, updated_at) VALUES ('vendor', 1, ?, 0, '[]', ?, 'x', 'x')",
                (version, status.value),
            )
        assert queue_deliveries(store, [Queued(Kind.VENDOR, 1, "A", [("Acme",)])]) == [True]
