"""What reconcile reads besides payments and Stampli's rows: the versions of each bill sent
to Stampli, the bills FreshBooks deleted, and bills' invoice dates (the fallback key).

Queries only, one set of bills at a time (`BillSet`); `sync/reconcile_inputs.py`
says what they mean.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from datetime import date

from fbstampli.models import Kind, VisState
from fbstampli.store import Row, Store
from fbstampli.store.deliveries import DeliveryStatus
from fbstampli.store.reconciliations import BillSet


def _where(bills: BillSet) -> str:
    return "BETWEEN ? AND ? " if bills.ids is None else "IN (SELECT value FROM json_each(?)) "


_DELIVERIES = (
    "SELECT fb_id, content_hash, rows, status, created_at, updated_at FROM deliveries "
    "WHERE kind = 'bill' AND fb_id "
)


def bill_deliveries(store: Store, bills: BillSet) -> Iterator[Row]:
    """Every version of `bills` queued for Stampli, oldest first per bill: (fb_id,
    content_hash, rows, status, created_at, updated_at)."""
    yield from store.iterate(_DELIVERIES + _where(bills) + "ORDER BY fb_id, id", bills.params())


_DELETED = (
    "SELECT s.fb_id, json_extract(s.payload, '$.currency_code') AS currency_code, "
    "json_extract(s.payload, '$.total_amount') AS total_amount, "
    "ifnull(s.updated_at, s.seen_at) AS deleted_at, "
    # `+d.status`: through the bill's own deliveries (kind, fb_id), not every delivered one.
    "(SELECT min(d.updated_at) FROM deliveries AS d WHERE d.kind = 'bill' "
    "AND d.fb_id = s.fb_id AND +d.status = ? AND d.content_hash LIKE 'void:%') "
    "AS void_sent_at FROM source_objects AS s "
    "WHERE s.kind = 'bill' AND s.vis_state = ? AND s.fb_id "
)


def deleted_bills(store: Store, bills: BillSet) -> Iterator[Row]:
    """The bills of `bills` FreshBooks deleted: (fb_id, currency_code, total_amount,
    deleted_at: FreshBooks' last change, void_sent_at: when the VOID reached Stampli)."""
    yield from store.iterate(
        _DELETED + _where(bills),
        (DeliveryStatus.DELIVERED.value, int(VisState.DELETED), *bills.params()),
    )


def bill_issue_dates(store: Store, ids: Collection[int]) -> Mapping[int, date]:
    """The invoice (issue) date of each of these snapshotted bills."""
    rows = store.query(
        "SELECT fb_id, json_extract(payload, '$.issue_date') AS issued FROM source_objects "
        "WHERE kind = ? AND fb_id IN (SELECT value FROM json_each(?))",
        (Kind.BILL.value, json.dumps(sorted(ids))),
    )
    return {
        int(row["fb_id"]): date.fromisoformat(str(row["issued"])[:10])
        for row in rows
        if row["issued"]
    }
