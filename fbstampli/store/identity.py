"""What a state is, as the marker on Stampli's SFTP server names it: its own id and the last
batch it delivered; and `state adopt-remote`'s one write, taking what waits as delivered.

Every function runs inside the caller's transaction where it writes.
"""

from __future__ import annotations

import uuid

from fbstampli.store import Store
from fbstampli.store.batches import OPEN_BATCH_STATES, BatchState
from fbstampli.store.deliveries import DeliveryStatus
from fbstampli.store.documents import DocumentState, mark_delivered

STATE_ID_KEY = "state.id"
# Not yet in Stampli, as far as the state knows; `adopt-remote` takes them as delivered.
_WAITING = (
    DeliveryStatus.PENDING,
    DeliveryStatus.PLANNED,
    DeliveryStatus.FAILED,
    DeliveryStatus.DEAD,
    DeliveryStatus.HELD,
)


def state_id(store: Store) -> str:
    """The state's id, given by migration 4 to every state, new or old."""
    value = store.get_value(STATE_ID_KEY)
    if value is None:  # only a state whose kv row was removed by hand
        value = renew_state_id(store)
    return value


def renew_state_id(store: Store) -> str:
    """A new id: backups taken before it are no longer this state (adopt-remote)."""
    value = str(uuid.uuid4())
    store.put_value(STATE_ID_KEY, value)
    return value


VERSION_FLOOR_KEY = "versions.floor"


def version_floor(store: Store) -> int:
    """Added to every version number: 0 until `adopt-remote` raises it above every version
    another state may have sent (numbers only grow, so Stampli takes later ones as newer)."""
    return int(store.get_value(VERSION_FLOOR_KEY) or 0)


def raise_version_floor(store: Store, at_least: int) -> None:
    if at_least > version_floor(store):
        store.put_value(VERSION_FLOOR_KEY, str(at_least))


def version_bound(store: Store) -> int:
    """No version this state queued has a higher number: one delivery row per version."""
    row = store.query_one("SELECT coalesce(max(id), 0) AS last FROM deliveries")
    return version_floor(store) + (int(row["last"]) if row else 0)


def last_delivered_batch(store: Store) -> int:
    """The newest batch known delivered (batch ids only grow); 0 before the first."""
    row = store.query_one(
        "SELECT coalesce(max(id), 0) AS last FROM batches WHERE state = ?",
        (BatchState.DELIVERED,),
    )
    return int(row["last"]) if row else 0


def adopt_waiting(store: Store) -> tuple[int, int]:
    """Every version not yet sent taken as in Stampli: (deliveries, batches) so marked.

    Open batches are closed as delivered with their members; waiting deliveries
    outside a batch are marked delivered where they stand. An audit row each.
    """
    now = store.now_text()
    states = tuple(state.value for state in OPEN_BATCH_STATES)
    marks = ", ".join("?" for _ in states)
    where = f"WHERE state IN ({marks})"
    counted = store.query_one(f"SELECT count(*) AS n FROM batches {where}", states)  # noqa: S608
    store.execute(
        f"UPDATE batches SET state = ?, content = NULL, updated_at = ? {where}",  # noqa: S608
        (BatchState.DELIVERED.value, now, *states),
    )
    batches = int(counted["n"]) if counted else 0
    statuses = tuple(status.value for status in _WAITING)
    marks = ", ".join("?" for _ in statuses)
    waiting = store.query(
        f"SELECT id, kind, fb_id FROM deliveries WHERE status IN ({marks})",  # noqa: S608
        statuses,
    )
    store.execute_many(
        "UPDATE deliveries SET status = ?, last_error = NULL, updated_at = ? WHERE id = ?",
        [(DeliveryStatus.DELIVERED.value, now, row["id"]) for row in waiting],
    )
    store.audit_many(
        [
            (now, None, row["kind"], row["fb_id"], "adopted", "taken as already in Stampli")
            for row in waiting
        ]
    )
    return len(waiting), batches


def adopt_documents(store: Store) -> int:
    """Every bill document not yet sent taken as in Stampli (its bill's rows name it, and the
    bill is taken as delivered); the local copies are let go. How many were so marked."""
    rows = store.query(
        "SELECT sha256 FROM document_files WHERE state != ?", (DocumentState.DELIVERED,)
    )
    mark_delivered(store, [str(row["sha256"]) for row in rows], keep=False)
    return len(rows)
