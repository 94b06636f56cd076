"""The batches: one file each, journalled through its upload states to its rename.

This module owns every batch state transition, and moves deliveries into a
batch (`add_batch`) and out of it delivered (`mark_batch_delivered`); a failed
member leaves its batch through `deliveries.fail_delivery`. Every function runs
inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from fbstampli.models import Kind
from fbstampli.store import Row, Store
from fbstampli.store.deliveries import DeliveryStatus


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


def last_upload_at(store: Store) -> str | None:
    """When a file last reached Stampli's inbound folder."""
    row = store.query_one(
        "SELECT max(updated_at) AS at FROM batches WHERE state = ?", (BatchState.DELIVERED,)
    )
    return None if row is None or row["at"] is None else str(row["at"])
