"""Vendor names are read from the snapshots on first use, not all at the start of a run."""

import pytest

from fbstampli.models import Kind, Vendor
from fbstampli.store import Store
from fbstampli.store.outbox import save_snapshot, vendor_names
from fbstampli.store.snapshots import payload_of


def snapshot(store: Store, vendor_id: int, name: str) -> None:
    vendor = Vendor(fb_id=vendor_id, name=name)
    with store.transaction():
        save_snapshot(store, kind=Kind.VENDOR, fb_id=vendor_id, updated_at=None, vis_state=0,
                      content_hash="h", payload=payload_of(vendor))  # fmt: skip


def test_a_name_not_read_yet_is_read_from_its_snapshot_by_every_way_of_asking(
    store: Store,
) -> None:
    snapshot(store, 7, "Acme Ltd.")
    names = vendor_names(store)
    assert names  # truthy while empty: `names or {}` once dropped every stored name
    assert names.get(7) == "Acme Ltd."
    assert 7 in names
    assert vendor_names(store)[7] == "Acme Ltd."
    assert names.get(8) is None
    assert 8 not in names
    with pytest.raises(KeyError):
        names[8]


def test_a_name_this_run_fetched_wins_over_the_snapshot(store: Store) -> None:
    snapshot(store, 7, "Acme Ltd.")
    names = vendor_names(store)
    assert names.get(8) is None  # remembered as absent ...
    names[8] = "Newco"  # ... until this run fetches it
    names[7] = "Acme Renamed"
    assert (names[7], names[8]) == ("Acme Renamed", "Newco")
