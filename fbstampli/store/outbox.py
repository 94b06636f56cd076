"""Queries for the transactional outbox: snapshots, deliveries and batches.

This module owns every delivery status and batch state transition; nothing
else writes those columns. Every function runs inside the caller's
transaction; none commits by itself, so the sync orchestrators decide what
is durable before each side effect.
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


class BatchState(StrEnum):
    PLANNED = "planned"
    UPLOADING = "uploading"  # the .part may exist, complete or not
    PART_VERIFIED = "part_verified"  # the .part is complete on the server
    RENAME_SENT = "rename_sent"  # the rename may have happened
    DELIVERED = "delivered"
    FAILED = "failed"
    STUCK = "stuck"  # verified .part vanished without a rename: someone takes temp files


# Versions not yet in Stampli that a newer or identical version must not be queued beside.
WAITING_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.PLANNED, DeliveryStatus.FAILED)

OPEN_BATCH_STATES = (
    BatchState.PLANNED,
    BatchState.UPLOADING,
    BatchState.PART_VERIFIED,
    BatchState.RENAME_SENT,
)


def snapshots_for(store: Store, kind: Kind, ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """(content hash, vis_state) of the stored snapshots of these ids only.

    What one page of a listing is compared with: memory follows the page,
    not the account.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {
        int(row["fb_id"]): (str(row["content_hash"]), int(row["vis_state"]))
        for row in store.iterate(
            "SELECT fb_id, content_hash, vis_state FROM source_objects WHERE kind = ? "
            "AND fb_id IN (SELECT value FROM json_each(?))",
            (kind.value, json.dumps(wanted)),
        )
    }


class VendorNames(dict[int, str]):
    """Vendor id -> name: the names a run has set (what it fetched), and any other read from
    its vendor snapshot on first use, once.

    A run renders the bills it fetched, which name a few vendors; reading every vendor's
    snapshot up front made each 15-minute run cost the whole vendor history.
    """

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store
        self._absent: set[int] = set()

    def _load(self, vendor_id: int) -> bool:
        if vendor_id in self._absent:
            return False
        row = self._store.query_one(
            "SELECT json_extract(payload, '$.name') AS name FROM source_objects "
            "WHERE kind = 'vendor' AND fb_id = ?",
            (vendor_id,),
        )
        if row is None:
            self._absent.add(vendor_id)
            return False
        super().__setitem__(vendor_id, str(row["name"] or ""))
        return True

    def __bool__(self) -> bool:
        """Never falsy: a name not read yet is still there to be read (`names or {}` would
        drop them all)."""
        return True

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, int) and self._load(key))

    def __missing__(self, key: int) -> str:
        if self._load(key):
            return super().__getitem__(key)
        raise KeyError(key)

    def get(self, key: int, default: str | None = None) -> str | None:  # type: ignore[override]
        if super().__contains__(key) or self._load(key):
            return super().__getitem__(key)
        return default

    def __setitem__(self, key: int, value: str) -> None:
        self._absent.discard(key)
        super().__setitem__(key, value)


def vendor_names(store: Store) -> VendorNames:
    return VendorNames(store)


_SAVE_SNAPSHOT = (
    "INSERT INTO source_objects (kind, fb_id, updated_at, vis_state, content_hash, payload, "
    "seen_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, fb_id) DO UPDATE SET "
    "updated_at = excluded.updated_at, vis_state = excluded.vis_state, "
    "content_hash = excluded.content_hash, payload = excluded.payload, "
    "seen_at = excluded.seen_at"
)


def save_snapshot(
    store: Store,
    *,
    kind: Kind,
    fb_id: int,
    updated_at: str | None,
    vis_state: int,
    content_hash: str,
    payload: str,
) -> None:
    store.execute(
        _SAVE_SNAPSHOT,
        (kind.value, fb_id, updated_at, vis_state, content_hash, payload, store.now_text()),
    )


def save_snapshots(
    store: Store, snapshots: Sequence[tuple[Kind, int, str | None, int, str, str]]
) -> None:
    """`save_snapshot` for a slice at once: (kind, fb_id, updated_at, vis_state, hash, payload)."""
    now = store.now_text()
    store.execute_many(
        _SAVE_SNAPSHOT,
        [(kind.value, fb_id, *rest, now) for kind, fb_id, *rest in snapshots],
    )


@dataclass(frozen=True, slots=True)
class Queued:
    """One version of an object to queue (`queue_deliveries`)."""

    kind: Kind
    fb_id: int
    content_hash: str
    rows: Sequence[tuple[str, ...]]


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
    history: dict[tuple[Kind, int], list[Row]] = {}
    for kind in dict.fromkeys(item.kind for item in items):
        ids = sorted({item.fb_id for item in items if item.kind is kind})
        for row in store.iterate(
            "SELECT fb_id, content_hash, status, resend FROM deliveries WHERE kind = ? "
            "AND fb_id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (kind.value, json.dumps(ids)),
        ):
            history.setdefault((kind, int(row["fb_id"])), []).append(row)
    now = store.now_text()
    supersede: list[tuple[object, ...]] = []
    insert: list[tuple[object, ...]] = []
    queued: list[bool] = []
    replaceable = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DEAD)
    for item in items:
        earlier = history.get((item.kind, item.fb_id), [])
        same = [row for row in earlier if row["content_hash"] == item.content_hash]
        if any(row["status"] in WAITING_STATUSES for row in same):
            queued.append(False)
            continue
        latest = next(
            (row for row in reversed(earlier) if row["status"] != DeliveryStatus.SUPERSEDED), None
        )
        if (
            latest is not None
            and latest["content_hash"] == item.content_hash
            and latest["status"] == DeliveryStatus.DELIVERED
        ):
            queued.append(False)
            continue
        if any(row["status"] in replaceable for row in earlier):
            supersede.append(
                (DeliveryStatus.SUPERSEDED, now, item.kind.value, item.fb_id, *replaceable)
            )
        resend = max((int(row["resend"]) for row in same), default=-1) + 1
        insert.append(
            (
                item.kind.value,
                item.fb_id,
                item.content_hash,
                resend,
                json.dumps(list(item.rows)),
                DeliveryStatus.PENDING,
                now,
                now,
            )
        )
        queued.append(True)
    if supersede:
        store.execute_many(
            "UPDATE deliveries SET status = ?, updated_at = ? "
            "WHERE kind = ? AND fb_id = ? AND status IN (?, ?, ?)",
            supersede,
        )
    if insert:
        store.execute_many(
            "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            insert,
        )
    return queued


def queue_delivery(
    store: Store,
    *,
    kind: Kind,
    fb_id: int,
    content_hash: str,
    rows: Iterable[tuple[str, ...]],
    force: bool = False,
) -> int | None:
    """Queue one version of an object; return the delivery id, or None if it is queued already.

    Older versions still waiting are superseded: Stampli only ever needs the
    newest. `force` queues a version again even if it was delivered before.
    """
    now = store.now_text()
    waiting = store.query_one(
        "SELECT id FROM deliveries WHERE kind = ? AND fb_id = ? AND content_hash = ? "
        "AND status IN (?, ?, ?)",
        (kind.value, fb_id, content_hash, *WAITING_STATUSES),
    )
    if waiting is not None:
        return None
    latest = store.query_one(
        "SELECT content_hash, status FROM deliveries WHERE kind = ? AND fb_id = ? "
        "AND status != ? ORDER BY id DESC LIMIT 1",
        (kind.value, fb_id, DeliveryStatus.SUPERSEDED),
    )
    if (
        not force
        and latest is not None
        and latest["content_hash"] == content_hash
        and latest["status"] == DeliveryStatus.DELIVERED
    ):
        return None
    store.execute(
        "UPDATE deliveries SET status = ?, updated_at = ? "
        "WHERE kind = ? AND fb_id = ? AND status IN (?, ?, ?)",
        (
            DeliveryStatus.SUPERSEDED,
            now,
            kind.value,
            fb_id,
            DeliveryStatus.PENDING,
            DeliveryStatus.FAILED,
            DeliveryStatus.DEAD,
        ),
    )
    resend_row = store.query_one(
        "SELECT coalesce(max(resend) + 1, 0) AS next FROM deliveries "
        "WHERE kind = ? AND fb_id = ? AND content_hash = ?",
        (kind.value, fb_id, content_hash),
    )
    resend = int(resend_row["next"]) if resend_row else 0
    return store.execute(
        "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind.value,
            fb_id,
            content_hash,
            resend,
            json.dumps(list(rows)),
            DeliveryStatus.PENDING,
            now,
            now,
        ),
    )


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


def open_batches(store: Store) -> list[Row]:
    placeholders = ", ".join("?" for _ in OPEN_BATCH_STATES)
    return store.query(
        f"SELECT * FROM batches WHERE state IN ({placeholders}) ORDER BY file_name",  # noqa: S608
        tuple(state.value for state in OPEN_BATCH_STATES),
    )


def set_batch_state(
    store: Store, batch_id: int, state: BatchState, error: str | None = None
) -> None:
    store.execute(
        "UPDATE batches SET state = ?, last_error = coalesce(?, last_error), updated_at = ? "
        "WHERE id = ?",
        (state.value, error, store.now_text(), batch_id),
    )


def batch_members(store: Store, batch_id: int) -> list[Row]:
    return store.query(
        "SELECT id, kind, fb_id, attempts FROM deliveries WHERE batch_id = ? ORDER BY id",
        (batch_id,),
    )


def batch(store: Store, batch_id: int) -> Row | None:
    return store.query_one("SELECT * FROM batches WHERE id = ?", (batch_id,))


def add_batch(
    store: Store,
    *,
    batch_id: int,
    kind: Kind,
    file_name: str,
    directory: str,
    sha256: str,
    content: bytes,
    delivery_ids: Iterable[int],
) -> None:
    """A `planned` batch holding `content`, and its deliveries moved to `planned` with it."""
    now = store.now_text()
    store.execute(
        "INSERT INTO batches (id, kind, file_name, directory, sha256, size, content, "
        "state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            batch_id,
            kind.value,
            file_name,
            directory,
            sha256,
            len(content),
            content,
            BatchState.PLANNED,
            now,
            now,
        ),
    )
    store.execute_many(
        "UPDATE deliveries SET status = ?, batch_id = ?, updated_at = ? WHERE id = ?",
        [(DeliveryStatus.PLANNED, batch_id, now, delivery_id) for delivery_id in delivery_ids],
    )


def next_batch_id(store: Store) -> int:
    """The id the next batch gets; only safe inside `BEGIN IMMEDIATE` (we are the one writer)."""
    row = store.query_one("SELECT coalesce(max(id), 0) + 1 AS next FROM batches")
    return int(row["next"]) if row else 1


def count_upload_attempt(store: Store, batch_id: int) -> None:
    store.execute("UPDATE batches SET attempts = attempts + 1 WHERE id = ?", (batch_id,))


def mark_batch_delivered(store: Store, batch_id: int) -> list[Row]:
    """The batch and its members are in Stampli; its content is no longer kept.

    Returns the members, for the caller's audit rows.
    """
    set_batch_state(store, batch_id, BatchState.DELIVERED)
    store.execute("UPDATE batches SET content = NULL WHERE id = ?", (batch_id,))
    members = batch_members(store, batch_id)
    now = store.now_text()
    store.execute_many(
        "UPDATE deliveries SET status = ?, last_error = NULL, updated_at = ? WHERE id = ?",
        [(DeliveryStatus.DELIVERED, now, member["id"]) for member in members],
    )
    return members


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


def has_snapshots(store: Store) -> bool:
    """Whether anything was ever read from FreshBooks (false before the first sync)."""
    return store.query_one("SELECT 1 FROM source_objects LIMIT 1") is not None


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


def delivered_object_count(store: Store, kind: Kind) -> int:
    """How many distinct objects of `kind` reached Stampli at least once (`status --all`)."""
    row = store.query_one(
        "SELECT count(DISTINCT fb_id) AS n FROM deliveries WHERE kind = ? AND status = ?",
        (kind.value, DeliveryStatus.DELIVERED),
    )
    return int(row["n"]) if row else 0


def objects_in_stampli(store: Store) -> dict[str, dict[str, int]]:
    """Per kind: how many objects were ever queued, and how many of them reached Stampli.

    An object counts as in Stampli once any version of it was delivered: a
    newer version waiting behind it is a change on its way, not a missing bill.
    """
    rows = store.query(
        "SELECT kind, count(DISTINCT fb_id) AS objects, "
        "count(DISTINCT CASE WHEN status = ? THEN fb_id END) AS delivered "
        "FROM deliveries GROUP BY kind",
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
        "coalesce(json_extract(s.payload, '$.bill_number'), json_extract(s.payload, '$.name'), "
        "'') AS label FROM deliveries AS d "
        "LEFT JOIN source_objects AS s ON s.kind = d.kind AND s.fb_id = d.fb_id "
        "WHERE d.status IN (?, ?) ORDER BY d.created_at, d.id",
        (DeliveryStatus.FAILED, DeliveryStatus.DEAD),
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
        }
        for row in rows
    ]


def last_upload_at(store: Store) -> str | None:
    """When a file last reached Stampli's inbound folder."""
    row = store.query_one(
        "SELECT max(updated_at) AS at FROM batches WHERE state = ?", (BatchState.DELIVERED,)
    )
    return None if row is None or row["at"] is None else str(row["at"])
