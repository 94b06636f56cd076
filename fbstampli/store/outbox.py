"""Queries for the transactional outbox: snapshots, deliveries and batches.

Every function runs inside the caller's transaction; none commits by itself,
so the sync orchestrators decide what is durable before each side effect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

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


OPEN_BATCH_STATES = (
    BatchState.PLANNED,
    BatchState.UPLOADING,
    BatchState.PART_VERIFIED,
    BatchState.RENAME_SENT,
)


def load_snapshots(store: Store) -> dict[tuple[Kind, int], tuple[str, int]]:
    return {
        (Kind(row["kind"]), int(row["fb_id"])): (str(row["content_hash"]), int(row["vis_state"]))
        for row in store.iterate("SELECT kind, fb_id, content_hash, vis_state FROM source_objects")
    }


def vendor_names(store: Store) -> dict[int, str]:
    names: dict[int, str] = {}
    for row in store.iterate("SELECT fb_id, payload FROM source_objects WHERE kind = 'vendor'"):
        names[int(row["fb_id"])] = str(json.loads(row["payload"]).get("name", ""))
    return names


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
        "INSERT INTO source_objects (kind, fb_id, updated_at, vis_state, content_hash, payload, "
        "seen_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, fb_id) DO UPDATE SET "
        "updated_at = excluded.updated_at, vis_state = excluded.vis_state, "
        "content_hash = excluded.content_hash, payload = excluded.payload, "
        "seen_at = excluded.seen_at",
        (kind.value, fb_id, updated_at, vis_state, content_hash, payload, store.now_text()),
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
    """Queue one version of an object; return the delivery id, or None if it is queued already.

    Older versions still waiting are superseded: Stampli only ever needs the
    newest. `force` queues a version again even if it was delivered before.
    """
    now = store.now_text()
    waiting = store.query_one(
        "SELECT id FROM deliveries WHERE kind = ? AND fb_id = ? AND content_hash = ? "
        "AND status IN ('pending', 'planned', 'failed')",
        (kind.value, fb_id, content_hash),
    )
    if waiting is not None:
        return None
    latest = store.query_one(
        "SELECT content_hash, status FROM deliveries WHERE kind = ? AND fb_id = ? "
        "AND status != 'superseded' ORDER BY id DESC LIMIT 1",
        (kind.value, fb_id),
    )
    if (
        not force
        and latest is not None
        and latest["content_hash"] == content_hash
        and latest["status"] == DeliveryStatus.DELIVERED
    ):
        return None
    store.execute(
        "UPDATE deliveries SET status = 'superseded', updated_at = ? "
        "WHERE kind = ? AND fb_id = ? AND status IN ('pending', 'failed', 'dead')",
        (now, kind.value, fb_id),
    )
    resend_row = store.query_one(
        "SELECT coalesce(max(resend) + 1, 0) AS next FROM deliveries "
        "WHERE kind = ? AND fb_id = ? AND content_hash = ?",
        (kind.value, fb_id, content_hash),
    )
    resend = int(resend_row["next"]) if resend_row else 0
    return store.execute(
        "INSERT INTO deliveries (kind, fb_id, content_hash, resend, rows, status, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
        (kind.value, fb_id, content_hash, resend, json.dumps(list(rows)), now, now),
    )


def requeue_due(store: Store, now: datetime) -> int:
    """Failed deliveries whose backoff has passed go back to pending."""
    due = store.query(
        "SELECT id FROM deliveries WHERE status = 'failed' AND next_attempt_at <= ?",
        (to_utc_text(now),),
    )
    store.execute(
        "UPDATE deliveries SET status = 'pending', updated_at = ? "
        "WHERE status = 'failed' AND next_attempt_at <= ?",
        (store.now_text(), to_utc_text(now)),
    )
    return len(due)


def pending_deliveries(store: Store, kind: Kind) -> list[Row]:
    return store.query(
        "SELECT id, kind, fb_id, rows FROM deliveries WHERE status = 'pending' AND kind = ? "
        "ORDER BY id",
        (kind.value,),
    )


def outstanding_count(store: Store, kind: Kind) -> int:
    """Deliveries of `kind` not yet in Stampli that later kinds must wait for."""
    row = store.query_one(
        "SELECT count(*) AS n FROM deliveries WHERE kind = ? "
        "AND status IN ('pending', 'planned', 'failed')",
        (kind.value,),
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
