"""Deliveries held as poison: one object that cannot be written into a Stampli file.

A held delivery waits for a fix (a template change, a record corrected in
FreshBooks), not for a time: every run puts it back in the queue and tries it
again, and `retry --bill/--vendor` does the same at once. It never stops the
rest of the queue; a bill whose vendor never reached Stampli, and a payment
whose bill never did, are held behind it. Every function runs inside the
caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fbstampli.models import Kind
from fbstampli.store import Store
from fbstampli.store.deliveries import DeliveryStatus

# What an object is known by: a vendor's name, a bill's number.
_LABEL = "coalesce(json_extract(payload, '$.bill_number'), json_extract(payload, '$.name'), '')"
# The object each kind waits for, and where its id sits in the waiting object's payload.
PARENT: dict[Kind, tuple[Kind, str]] = {
    Kind.BILL: (Kind.VENDOR, "$.vendor_id"),
    Kind.PAYMENT: (Kind.BILL, "$.bill_id"),
}


@dataclass(frozen=True, slots=True)
class Behind:
    """A pending delivery whose parent object is held and never reached Stampli."""

    delivery_id: int
    fb_id: int
    parent_id: int
    parent_label: str


def labels(store: Store, kind: Kind, fb_ids: Iterable[int]) -> dict[int, str]:
    """The names people know these objects by, from the last snapshot of each."""
    rows = store.query(
        f"SELECT fb_id, {_LABEL} AS label FROM source_objects WHERE kind = ? "  # noqa: S608
        "AND fb_id IN (SELECT value FROM json_each(?))",
        (kind.value, json.dumps(sorted(set(fb_ids)))),
    )
    return {int(row["fb_id"]): str(row["label"] or "") for row in rows}


def hold(store: Store, held: Sequence[tuple[int, str]]) -> None:
    """Each (delivery id, reason) out of the queue until the next run or a `retry`."""
    now = store.now_text()
    store.execute_many(
        "UPDATE deliveries SET status = ?, last_error = ?, next_attempt_at = NULL, "
        "batch_id = NULL, updated_at = ? WHERE id = ?",
        [(DeliveryStatus.HELD, reason, now, delivery_id) for delivery_id, reason in held],
    )


def release_held(store: Store) -> int:
    """Every held delivery back to `pending`, to be tried again with today's template."""
    # The status written out, not bound: the statement names the few held rows it reads.
    row = store.query_one("SELECT count(*) AS n FROM deliveries WHERE status = 'held'")
    store.execute(
        "UPDATE deliveries SET status = ?, updated_at = ? WHERE status = 'held'",
        (DeliveryStatus.PENDING, store.now_text()),
    )
    return int(row["n"]) if row else 0


def behind_held(store: Store, kind: Kind) -> list[Behind]:
    """Pending deliveries of `kind` whose parent is held and was never delivered."""
    if kind not in PARENT:
        return []
    parent_kind, path = PARENT[kind]
    rows = store.query(
        "SELECT d.id, d.fb_id, p.fb_id AS parent_id, "
        "coalesce(json_extract(ps.payload, '$.bill_number'), json_extract(ps.payload, '$.name'), "
        "'') AS parent_label FROM deliveries AS d "
        "JOIN source_objects AS s ON s.kind = d.kind AND s.fb_id = d.fb_id "
        "JOIN deliveries AS p ON p.kind = ? AND p.fb_id = json_extract(s.payload, ?) "
        "AND p.status = ? "
        "LEFT JOIN source_objects AS ps ON ps.kind = p.kind AND ps.fb_id = p.fb_id "
        "WHERE d.kind = ? AND d.status = ? AND NOT EXISTS (SELECT 1 FROM deliveries AS x "
        "WHERE x.kind = p.kind AND x.fb_id = p.fb_id AND x.status = ?) ORDER BY d.id",
        (
            parent_kind.value,
            path,
            DeliveryStatus.HELD,
            kind.value,
            DeliveryStatus.PENDING,
            DeliveryStatus.DELIVERED,
        ),
    )
    return [
        Behind(int(row["id"]), int(row["fb_id"]), int(row["parent_id"]), str(row["parent_label"]))
        for row in rows
    ]


def queued_deliveries(store: Store, limit: int = 10_000) -> list[dict[str, object]]:
    """Deliveries queued or in an unfinished upload, oldest first, with their names: with the
    failing ones (`failing_deliveries`), everything not yet in Stampli (`status --stuck`)."""
    rows = store.query(
        "SELECT d.kind, d.fb_id, d.status, d.last_error, d.created_at, "  # noqa: S608
        f"coalesce((SELECT {_LABEL} FROM source_objects AS s "
        "WHERE s.kind = d.kind AND s.fb_id = d.fb_id), '') AS label "
        "FROM deliveries AS d WHERE d.status IN (?, ?) ORDER BY d.id LIMIT ?",
        (DeliveryStatus.PENDING, DeliveryStatus.PLANNED, limit),
    )
    return [
        {
            "kind": str(row["kind"]),
            "fb_id": int(row["fb_id"]),
            "label": str(row["label"] or ""),
            "status": str(row["status"]),
            "since": str(row["created_at"]),
            "error": str(row["last_error"] or ""),
        }
        for row in rows
    ]
