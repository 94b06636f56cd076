"""The webhook event queue and the callback verifiers, as rows in the encrypted store.

A verifier is the HMAC key of one FreshBooks callback. It arrives in a POST
that anyone could forge, so it is kept *pending* until FreshBooks accepts it
back (the verification PUT); only *confirmed* verifiers check signatures.
Queries only: callers own the transactions' timing, never hold one across I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from fbstampli.logs import register_secret
from fbstampli.store import Store

CONFIRMED_PREFIX = "webhook.verifier."
PENDING_PREFIX = "webhook.pending."


def _secrets(store: Store, prefix: str) -> dict[int, str]:
    found: dict[int, str] = {}
    for row in store.query(
        "SELECT name, value FROM credentials WHERE substr(name, 1, ?) = ? ORDER BY name",
        (len(prefix), prefix),
    ):
        suffix = str(row["name"])[len(prefix) :]
        if suffix.isdigit():
            value = str(row["value"])
            register_secret(value)
            found[int(suffix)] = value
    return found


def confirmed_verifiers(store: Store) -> dict[int, str]:
    """callback id -> verifier FreshBooks accepted: the keys events are checked with."""
    return _secrets(store, CONFIRMED_PREFIX)


def pending_verifiers(store: Store) -> dict[int, str]:
    """callback id -> verifier received in a handshake and not yet accepted by FreshBooks."""
    return _secrets(store, PENDING_PREFIX)


def save_pending_verifier(store: Store, callback_id: int, verifier: str) -> bool:
    """Remember a handshake's verifier until it is confirmed; False if it is confirmed already."""
    register_secret(verifier)
    with store.transaction():
        if store.get_secret(f"{CONFIRMED_PREFIX}{callback_id}") == verifier:
            store.delete_secret(f"{PENDING_PREFIX}{callback_id}")
            return False
        store.put_secret(f"{PENDING_PREFIX}{callback_id}", verifier)
        return True


def confirm_verifier(store: Store, callback_id: int, verifier: str) -> None:
    """FreshBooks accepted `verifier`: from now on it checks `callback_id`'s events."""
    register_secret(verifier)
    with store.transaction():
        store.put_secret(f"{CONFIRMED_PREFIX}{callback_id}", verifier)
        if store.get_secret(f"{PENDING_PREFIX}{callback_id}") == verifier:
            store.delete_secret(f"{PENDING_PREFIX}{callback_id}")
        store.audit("webhook_verified", detail=f"callback {callback_id}")


def drop_pending_verifier(store: Store, callback_id: int, verifier: str) -> None:
    """Forget a pending verifier FreshBooks refused (a forged or stale handshake)."""
    with store.transaction():
        if store.get_secret(f"{PENDING_PREFIX}{callback_id}") == verifier:
            store.delete_secret(f"{PENDING_PREFIX}{callback_id}")


def forget_verifiers(store: Store, callback_id: int) -> None:
    with store.transaction():
        store.delete_secret(f"{CONFIRMED_PREFIX}{callback_id}")
        store.delete_secret(f"{PENDING_PREFIX}{callback_id}")


def enqueue_event(store: Store, name: str, object_id: int, account_id: str) -> bool:
    """Queue an event for the push engine; False when the same one is already waiting.

    A duplicate delivery (FreshBooks retries, replays) changes nothing: the
    waiting row already makes the next run re-fetch that object.
    """
    with store.transaction():
        waiting = store.query_one(
            "SELECT 1 FROM events WHERE processed_at IS NULL AND name = ? AND object_id = ? "
            "LIMIT 1",
            (name, object_id),
        )
        if waiting is not None:
            return False
        store.execute(
            "INSERT INTO events (received_at, name, object_id, account_id) VALUES (?, ?, ?, ?)",
            (store.now_text(), name, object_id, account_id),
        )
        return True


def pending_events(store: Store) -> list[tuple[int, str, int]]:
    """(row id, event name, object id) of every event not yet processed, oldest first."""
    return [
        (int(row["id"]), str(row["name"]), int(row["object_id"]))
        for row in store.query(
            "SELECT id, name, object_id FROM events WHERE processed_at IS NULL ORDER BY id"
        )
    ]


def mark_events(store: Store, event_ids: list[int]) -> None:
    """Processed: the objects they named are in the outbox (same transaction)."""
    now = store.now_text()
    store.execute_many(
        "UPDATE events SET processed_at = ? WHERE id = ?",
        [(now, event_id) for event_id in event_ids],
    )


@dataclass(frozen=True, slots=True)
class QueueState:
    queued: int
    last_event_at: str | None


def queue_state(store: Store) -> QueueState:
    row = store.query_one(
        "SELECT max(received_at) AS last, sum(processed_at IS NULL) AS queued FROM events"
    )
    if row is None:
        return QueueState(0, None)
    return QueueState(int(row["queued"] or 0), row["last"])
