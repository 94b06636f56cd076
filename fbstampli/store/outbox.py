"""The transactional outbox seen whole: what `status` reports of it, and the old import path.

The outbox is three tables with an owner each: `snapshots` (what FreshBooks
said), `deliveries` (versions on their way, and their status) and `batches`
(files through their upload states). The names below are re-exported so code
that says `outbox.add_batch` or `from fbstampli.store.outbox import ...` keeps
working; new code imports from the owning module.
"""

from __future__ import annotations

from typing import Any

from fbstampli.store import Store
from fbstampli.store.batches import (
    OPEN_BATCH_STATES,
    BatchState,
    add_batch,
    batch,
    batch_members,
    count_upload_attempt,
    last_upload_at,
    mark_batch_delivered,
    next_batch_id,
    open_batches,
    set_batch_state,
)
from fbstampli.store.deliveries import (
    WAITING_STATUSES,
    DeliveryStatus,
    Queued,
    delivered_object_count,
    fail_delivery,
    failing_deliveries,
    latest_delivery,
    objects_in_stampli,
    outstanding_count,
    pending_deliveries,
    pending_deliveries_after,
    queue_deliveries,
    queue_delivery,
    requeue_all,
    requeue_delivery,
    requeue_due,
)
from fbstampli.store.snapshots import (
    VendorNames,
    has_snapshots,
    save_snapshot,
    save_snapshots,
    snapshots_for,
    vendor_names,
)

__all__ = [
    "OPEN_BATCH_STATES",
    "WAITING_STATUSES",
    "BatchState",
    "DeliveryStatus",
    "Queued",
    "VendorNames",
    "add_batch",
    "batch",
    "batch_members",
    "count_upload_attempt",
    "delivered_object_count",
    "delivery_summary",
    "fail_delivery",
    "failing_deliveries",
    "has_snapshots",
    "last_upload_at",
    "latest_delivery",
    "mark_batch_delivered",
    "next_batch_id",
    "objects_in_stampli",
    "open_batches",
    "outstanding_count",
    "pending_deliveries",
    "pending_deliveries_after",
    "queue_deliveries",
    "queue_delivery",
    "requeue_all",
    "requeue_delivery",
    "requeue_due",
    "save_snapshot",
    "save_snapshots",
    "set_batch_state",
    "snapshots_for",
    "vendor_names",
]


def delivery_summary(store: Store) -> dict[str, Any]:
    """Delivered and waiting counts (with the oldest waiting one's creation), for `status`."""
    waiting = {
        str(row["status"]): (int(row["n"]), row["oldest"])
        for row in store.query(
            "SELECT status, count(*) AS n, min(created_at) AS oldest FROM deliveries "
            "WHERE status IN (?, ?, ?, ?) GROUP BY status",
            (*WAITING_STATUSES, DeliveryStatus.DEAD),
        )
    }
    delivered = store.query_one(
        "SELECT count(*) AS n FROM deliveries WHERE status = ?", (DeliveryStatus.DELIVERED,)
    )
    stuck = store.query_one(
        "SELECT count(*) AS n FROM batches WHERE state = ?", (BatchState.STUCK,)
    )
    return {
        "delivered": int(delivered["n"]) if delivered else 0,
        "waiting": waiting,
        "stuck_batches": int(stuck["n"]) if stuck else 0,
    }
