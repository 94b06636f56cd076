"""The deliveries: one row per version of an object on its way to Stampli, and its status.

This module owns every delivery status transition and the stored shape of a
delivery's rendered rows (`encode_rows`/`delivery_rows`); nothing else writes
those columns. Every function runs inside the caller's transaction; none
commits by itself, so the sync orchestrators decide what is durable before
each side effect. Moving deliveries into and out of a batch is `batches`'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fbstampli.clock import to_utc_text
from fbstampli.models import Kind
from fbstampli.store import Row, Store


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    PLANNED = "planned"  # in a batch that is being uploaded
    DELIVERED = "delivered"
    FAILED = "failed"  # waits for next_attempt_at
    DEAD = "dead"  # used up its attempts; waits for `fbstampli retry`
    SUPERSEDED = "superseded"  # a newer version was queued before this one was sent
    HELD = "held"  # cannot be written into a file (poison); tried again each run (store.held)


# Versions not yet in Stampli that a newer or identical version must not be queued beside.
WAITING_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.PLANNED, DeliveryStatus.FAILED)
# Versions a newer one replaces when it is queued.
_REPLACEABLE = (
    DeliveryStatus.PENDING,
    DeliveryStatus.FAILED,
    DeliveryStatus.DEAD,
    DeliveryStatus.HELD,
)

_SUPERSEDE = (
    "UPDATE deliveries SET status = ?, updated_at = ? "
    "WHERE kind = ? AND fb_id = ? AND status IN (?, ?, ?, ?)"
)
_INSERT = (
    "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, created_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def encode_rows(rows: Iterable[tuple[str, ...]]) -> str:
    """A delivery's rendered rows as the `rows` column keeps them: a JSON list of lists."""
    return json.dumps(list(rows))


def delivery_rows(text: str) -> tuple[tuple[str, ...], ...]:
    """The inverse of `encode_rows`."""
    return tuple(tuple(row) for row in json.loads(text))


@dataclass(frozen=True, slots=True)
class Queued:
    """One version of an object to queue (`queue_deliveries`)."""

    kind: Kind
    fb_id: int
    content_hash: str
    rows: Sequence[tuple[str, ...]]


def _histories(store: Store, items: Sequence[Queued]) -> dict[tuple[Kind, int], list[Row]]:
    """Every earlier version of these objects, oldest first: one query a kind."""
    history: dict[tuple[Kind, int], list[Row]] = {}
    for kind in dict.fromkeys(item.kind for item in items):
        ids = sorted({item.fb_id for item in items if item.kind is kind})
        for row in store.iterate(
            "SELECT fb_id, content_hash, status, resend FROM deliveries WHERE kind = ? "
            "AND fb_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (kind.value, json.dumps(ids)),
        ):
            history.setdefault((kind, int(row["fb_id"])), []).append(row)
    return history


def _queued_already(earlier: Sequence[Row], content_hash: str) -> bool:
    """Whether this version waits already."""
    return any(
        row["content_hash"] == content_hash
        and row["status"] in (*WAITING_STATUSES, DeliveryStatus.HELD)
        for row in earlier
    )


def _stampli_holds(earlier: Sequence[Row], content_hash: str) -> bool:
    """Whether this version is the newest Stampli received, with nothing after it on its way.

    Versions after it that never left (pending, failed, dead, held) do not count: an object
    changed and changed back is already in Stampli as it is now, and those are superseded.
    A version in a batch being uploaded (planned) may still arrive, so it does count.
    """
    for row in reversed(earlier):
        if row["status"] == DeliveryStatus.DELIVERED:
            return bool(row["content_hash"] == content_hash)
        if row["status"] not in (*_REPLACEABLE, DeliveryStatus.SUPERSEDED):
            return False
    return False


def queue_deliveries(store: Store, items: Sequence[Queued]) -> list[bool]:
    """`queue_delivery` for a slice of objects at once; whether each was queued.

    The same decisions from the same rows, read with one query a kind and written
    with one statement each, instead of five statements an object (most of a first
    sync's state writes). Delivery ids follow the order of `items`, as one by one.
    An object named twice is queued one by one, since the first changes what the
    second sees.
    """
    keys = [(item.kind, item.fb_id) for item in items]
    if len(set(keys)) != len(keys):
        return [
            queue_delivery(
                store,
                kind=item.kind,
                fb_id=item.fb_id,
                content_hash=item.content_hash,
                rows=item.rows,
            )
            is not None
            for item in items
        ]
    history = _histories(store, items)
    now = store.now_text()
    supersede: list[tuple[object, ...]] = []
    insert: list[tuple[object, ...]] = []
    queued: list[bool] = []
    for item in items:
        earlier = history.get((item.kind, item.fb_id), [])
        if _queued_already(earlier, item.content_hash):
            queued.append(False)
            continue
        if any(row["status"] in _REPLACEABLE for row in earlier):
            supersede.append(
                (DeliveryStatus.SUPERSEDED, now, item.kind.value, item.fb_id, *_REPLACEABLE)
            )
        if _stampli_holds(earlier, item.content_hash):
            queued.append(False)
            continue
        same = (row for row in earlier if row["content_hash"] == item.content_hash)
        resend = max((int(row["resend"]) for row in same), default=-1) + 1
        insert.append(_new_row(item.kind, item.fb_id, item.content_hash, resend, item.rows, now))
        queued.append(True)
    if supersede:
        store.execute_many(_SUPERSEDE, supersede)
    if insert:
        store.execute_many(_INSERT, insert)
    return queued


def _new_row(
    kind: Kind,
    fb_id: int,
    content_hash: str,
    resend: int,
    rows: Iterable[tuple[str, ...]],
    now: str,
) -> tuple[object, ...]:
    return (
        kind.value,
        fb_id,
        content_hash,
        resend,
        encode_rows(rows),
        DeliveryStatus.PENDING,
        now,
        now,
    )


def queue_delivery(
    store: Store,
    *,
    kind: Kind,
    fb_id: int,
    content_hash: str,
    rows: Iterable[tuple[str, ...]],
    force: bool = False,
) -> int | None:
    """Queue one version of an object; its delivery id, or None if it waits already or is
    what Stampli holds (`_stampli_holds`).

    Older versions still waiting are superseded: Stampli only ever needs the
    newest. `force` queues a version again even if it was delivered before.
    """
    now = store.now_text()
    earlier = store.query(
        "SELECT content_hash, status, resend FROM deliveries WHERE kind = ? AND fb_id = ? "
        "ORDER BY id",
        (kind.value, fb_id),
    )
    if _queued_already(earlier, content_hash):
        return None
    holds = not force and _stampli_holds(earlier, content_hash)
    store.execute(_SUPERSEDE, (DeliveryStatus.SUPERSEDED, now, kind.value, fb_id, *_REPLACEABLE))
    if holds:
        return None
    same = (row for row in earlier if row["content_hash"] == content_hash)
    resend = max((int(row["resend"]) for row in same), default=-1) + 1
    return store.execute(_INSERT, _new_row(kind, fb_id, content_hash, resend, rows, now))


def requeue_due(store: Store, now: datetime) -> int:
    """Failed deliveries whose backoff has passed go back to pending."""
    due = store.query(
        "SELECT id FROM deliveries WHERE status = ? AND next_attempt_at <= ?",
        (DeliveryStatus.FAILED, to_utc_text(now)),
    )
    store.execute(
        "UPDATE deliveries SET status = ?, updated_at = ? "
        "WHERE status = ? AND next_attempt_at <= ?",
        (DeliveryStatus.PENDING, store.now_text(), DeliveryStatus.FAILED, to_utc_text(now)),
    )
    return len(due)


def pending_deliveries(store: Store, kind: Kind) -> list[Row]:
    return store.query(
        "SELECT id, kind, fb_id, rows FROM deliveries WHERE status = ? AND kind = ? ORDER BY id",
        (DeliveryStatus.PENDING, kind.value),
    )


def pending_deliveries_after(store: Store, kind: Kind, after_id: int, limit: int) -> list[Row]:
    """The next `limit` pending deliveries of `kind` in queue order, after `after_id`."""
    return store.query(
        "SELECT id, kind, fb_id, rows FROM deliveries WHERE status = ? AND kind = ? AND id > ? "
        "ORDER BY id LIMIT ?",
        (DeliveryStatus.PENDING, kind.value, after_id, limit),
    )


def outstanding_count(store: Store, kind: Kind) -> int:
    """Deliveries of `kind` not yet in Stampli that later kinds must wait for."""
    row = store.query_one(
        "SELECT count(*) AS n FROM deliveries WHERE kind = ? AND status IN (?, ?, ?)",
        (kind.value, *WAITING_STATUSES),
    )
    return int(row["n"]) if row else 0


def fail_delivery(
    store: Store,
    delivery_id: int,
    *,
    dead: bool,
    attempts: int,
    next_attempt_at: datetime | None,
    error: str,
) -> None:
    """Out of its batch: `failed` until `next_attempt_at`, or `dead` until `fbstampli retry`."""
    store.execute(
        "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
        "last_error = ?, batch_id = NULL, updated_at = ? WHERE id = ?",
        (
            DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED,
            attempts,
            store.now_text() if dead or next_attempt_at is None else to_utc_text(next_attempt_at),
            error,
            store.now_text(),
            delivery_id,
        ),
    )


def latest_delivery(store: Store, kind: Kind, fb_id: int) -> Row | None:
    """The newest version of one object that was not superseded."""
    return store.query_one(
        "SELECT id, status, content_hash, rows FROM deliveries WHERE kind = ? AND fb_id = ? "
        "AND status != ? ORDER BY id DESC LIMIT 1",
        (kind.value, fb_id, DeliveryStatus.SUPERSEDED),
    )


def requeue_delivery(store: Store, delivery_id: int) -> None:
    """By hand: back to `pending` with fresh attempts."""
    store.execute(
        "UPDATE deliveries SET status = ?, attempts = 0, next_attempt_at = NULL, updated_at = ? "
        "WHERE id = ?",
        (DeliveryStatus.PENDING, store.now_text(), delivery_id),
    )


def requeue_all(store: Store, status: DeliveryStatus) -> list[Row]:
    """Every delivery in `status` back to `pending`; returns their (kind, fb_id) rows."""
    rows = store.query("SELECT kind, fb_id FROM deliveries WHERE status = ?", (status,))
    store.execute(
        "UPDATE deliveries SET status = ?, attempts = 0, next_attempt_at = NULL, updated_at = ? "
        "WHERE status = ?",
        (DeliveryStatus.PENDING, store.now_text(), status),
    )
    return rows


def delivered_object_count(store: Store, kind: Kind) -> int:
    """How many distinct objects of `kind` reached Stampli at least once (`status --all`)."""
    row = store.query_one(
        "SELECT count(DISTINCT fb_id) AS n FROM deliveries WHERE kind = ? AND status = ? "
        "AND NOT EXISTS (SELECT 1 FROM source_objects AS s WHERE s.kind = deliveries.kind "
        "AND s.fb_id = deliveries.fb_id AND s.vis_state = 1)",
        (kind.value, DeliveryStatus.DELIVERED),
    )
    return int(row["n"]) if row else 0


def objects_in_stampli(store: Store) -> dict[str, dict[str, int]]:
    """Per kind: how many objects were ever queued, and how many of them reached Stampli.

    An object counts as in Stampli once any version of it was delivered: a
    newer version waiting behind it is a change on its way, not a missing bill.
    An object deleted in FreshBooks counts on its own line (`store.deletions`).
    """
    rows = store.query(
        "SELECT kind, count(DISTINCT fb_id) AS objects, "
        "count(DISTINCT CASE WHEN status = ? THEN fb_id END) AS delivered "
        "FROM deliveries WHERE NOT EXISTS (SELECT 1 FROM source_objects AS s "
        "WHERE s.kind = deliveries.kind AND s.fb_id = deliveries.fb_id AND s.vis_state = 1) "
        "GROUP BY kind",
        (DeliveryStatus.DELIVERED,),
    )
    return {
        str(row["kind"]): {"objects": int(row["objects"]), "in_stampli": int(row["delivered"])}
        for row in rows
    }


def failing_deliveries(store: Store) -> list[dict[str, Any]]:
    """Deliveries that tried and failed (waiting for their next try, or given up), oldest first,
    with the bill number or vendor name people know them by."""
    rows = store.query(
        "SELECT d.kind, d.fb_id, d.status, d.attempts, d.next_attempt_at, d.last_error, "
        "d.created_at, "
        "coalesce(json_extract(s.payload, '$.bill_number'), json_extract(s.payload, '$.name'), "
        "'') AS label FROM deliveries AS d "
        "LEFT JOIN source_objects AS s ON s.kind = d.kind AND s.fb_id = d.fb_id "
        "WHERE d.status IN (?, ?, ?) ORDER BY d.created_at, d.id",
        (DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.HELD),
    )
    return [
        {
            "kind": str(row["kind"]),
            "fb_id": int(row["fb_id"]),
            "label": str(row["label"] or ""),
            "status": str(row["status"]),
            "attempts": int(row["attempts"]),
            "next_attempt_at": row["next_attempt_at"]
            if row["status"] == DeliveryStatus.FAILED
            else None,
            "error": str(row["last_error"] or ""),
            "queued_at": str(row["created_at"]),  # it has been failing at most since then
        }
        for row in rows
    ]
