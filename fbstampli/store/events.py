"""The webhook event queue and the callback verifiers, as rows in the encrypted store.

A verifier is the HMAC key of one FreshBooks callback. It arrives in a POST
that anyone could forge, so it is kept *pending* until FreshBooks accepts it
back (the verification PUT); only *confirmed* verifiers check signatures.
A handshake is only kept at all while a *handshake window* is open: the one
`webhooks register` / `webhooks verify --resend` opens while it waits for it.
Queries only: callers own the transactions' timing, never hold one across I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from fbstampli.clock import from_utc_text, to_utc_text
from fbstampli.logs import register_secret
from fbstampli.store import Store, holder

CONFIRMED_PREFIX = "webhook.verifier."
PENDING_PREFIX = "webhook.pending."
WINDOW_KEY = "webhook.handshake_window"
# Codes kept per callback until one is confirmed, newest last: a forged handshake arriving
# after the genuine one no longer replaces it, and each is tried in turn.
MAX_CANDIDATES = 4


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


def _candidates(value: str | None) -> list[str]:
    """The codes in one pending record: a JSON list, or (one code) the code itself."""
    if value is None:
        return []
    if value.startswith("["):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(code, str) for code in decoded):
            for code in decoded:
                register_secret(code)
            return decoded
    return [value]


def _put_candidates(store: Store, callback_id: int, codes: list[str]) -> None:
    name = f"{PENDING_PREFIX}{callback_id}"
    if not codes:
        store.delete_secret(name)
    else:
        store.put_secret(name, codes[0] if len(codes) == 1 else json.dumps(codes))


def pending_candidates(store: Store) -> dict[int, list[str]]:
    """callback id -> the codes received in handshakes, not yet accepted by FreshBooks."""
    return {i: _candidates(value) for i, value in _secrets(store, PENDING_PREFIX).items()}


def pending_verifiers(store: Store) -> dict[int, str]:
    """callback id -> the newest code received in a handshake, not yet accepted."""
    return {i: codes[-1] for i, codes in pending_candidates(store).items() if codes}


def save_pending_verifier(store: Store, callback_id: int, verifier: str) -> bool:
    """Add a handshake's code to its callback's candidates; False if it is confirmed already.

    The newest `MAX_CANDIDATES` are kept, so the genuine code survives a few later forged ones.
    """
    register_secret(verifier)
    with store.transaction():
        if store.get_secret(f"{CONFIRMED_PREFIX}{callback_id}") == verifier:
            store.delete_secret(f"{PENDING_PREFIX}{callback_id}")
            return False
        codes = _candidates(store.get_secret(f"{PENDING_PREFIX}{callback_id}"))
        if verifier in codes:
            codes.remove(verifier)
        _put_candidates(store, callback_id, [*codes, verifier][-MAX_CANDIDATES:])
        return True


def confirm_verifier(store: Store, callback_id: int, verifier: str) -> None:
    """FreshBooks accepted `verifier`: from now on it checks `callback_id`'s events."""
    register_secret(verifier)
    with store.transaction():
        store.put_secret(f"{CONFIRMED_PREFIX}{callback_id}", verifier)
        store.delete_secret(f"{PENDING_PREFIX}{callback_id}")  # the other candidates are moot
        store.audit("webhook_verified", detail=f"callback {callback_id}")


def drop_pending_verifier(store: Store, callback_id: int, verifier: str) -> None:
    """Forget a pending code FreshBooks refused (a forged or stale handshake)."""
    with store.transaction():
        codes = _candidates(store.get_secret(f"{PENDING_PREFIX}{callback_id}"))
        if verifier in codes:
            codes.remove(verifier)
            _put_candidates(store, callback_id, codes)


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


# ---- the handshake window ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandshakeWindow:
    """When handshakes are wanted, and for which callbacks.

    `callback_ids` is None while `webhooks register` waits for FreshBooks'
    answer: FreshBooks POSTs the handshake before it tells us the new id.
    """

    until: str  # UTC text, as `Store.now_text`
    callback_ids: frozenset[int] | None

    def admits(self, now: str, callback_id: int) -> bool:
        if now >= self.until:
            return False
        return self.callback_ids is None or callback_id in self.callback_ids


def handshake_window(store: Store) -> HandshakeWindow | None:
    """The open window, or None (no window, a closed one, or an unreadable record)."""
    record = store.get_json(WINDOW_KEY)
    if not isinstance(record, dict) or not isinstance(record.get("until"), str):
        return None
    ids = record.get("callback_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) for i in ids)):
        return None
    if holder.gone(record.get("holder")):
        return None  # the command that waited for it died: nobody will confirm a code
    window = HandshakeWindow(record["until"], None if ids is None else frozenset(ids))
    return window if store.now_text() < window.until else None


def open_handshake_window(
    store: Store, seconds: float, callback_ids: set[int] | None
) -> HandshakeWindow:
    """Accept handshakes for `callback_ids` (None: any id) for `seconds` from now.

    Known ids are added to those of a window still open, so two callbacks
    awaiting their codes are both admitted. Pending verifiers of callbacks the
    window no longer names are forgotten: they came from someone else.
    """
    until = to_utc_text(from_utc_text(store.now_text()) + timedelta(seconds=seconds))
    with store.transaction():
        current = handshake_window(store)
        ids: frozenset[int] | None = None
        if callback_ids is not None:
            ids = frozenset(callback_ids)
            if current is not None and current.callback_ids is not None:
                ids |= current.callback_ids
        store.put_json(
            WINDOW_KEY,
            {
                "until": until,
                "callback_ids": None if ids is None else sorted(ids),
                "holder": holder.this_process(),
            },
        )
        if ids is not None:
            _drop_pending_except(store, ids)
    return HandshakeWindow(until, ids)


def settle_handshake_window(store: Store) -> None:
    """Close the window once every callback it names has its confirmed verifier."""
    with store.transaction():
        window = handshake_window(store)
        if window is None:
            store.delete_value(WINDOW_KEY)
            _drop_pending_except(store, frozenset())
            return
        if window.callback_ids is None:
            return
        if window.callback_ids <= confirmed_verifiers(store).keys():
            store.delete_value(WINDOW_KEY)
            _drop_pending_except(store, frozenset())


def release_handshake_window(store: Store) -> None:
    """The opener exits on purpose: its window stays open for its ids until its time runs out,
    so a late code can be confirmed by `webhooks verify ID`. A window of any id is closed."""
    with store.transaction():
        record = store.get_json(WINDOW_KEY)
        if handshake_window(store) is None or not isinstance(record, dict):
            return
        if record.get("callback_ids") is None:
            store.delete_value(WINDOW_KEY)
            return
        store.put_json(WINDOW_KEY, {**record, "holder": None})


def close_handshake_window(store: Store) -> None:
    """No handshake is wanted any more; forget whatever is still pending."""
    with store.transaction():
        store.delete_value(WINDOW_KEY)
        _drop_pending_except(store, frozenset())


def _drop_pending_except(store: Store, keep: frozenset[int]) -> None:
    for callback_id in pending_verifiers(store):
        if callback_id not in keep:
            store.delete_secret(f"{PENDING_PREFIX}{callback_id}")


def save_windowed_verifier(
    store: Store, callback_id: int, verifier: str, *, max_pending: int
) -> str:
    """Keep a handshake's verifier if a window admits it: "saved", "known" or "unwanted".

    One read when no window is open: a flood of forged handshakes writes
    nothing and never holds the state's write lock.
    """
    window = handshake_window(store)
    if window is None or not window.admits(store.now_text(), callback_id):
        return "unwanted"
    with store.transaction():
        pending = pending_verifiers(store)
        if callback_id not in pending and len(pending) >= max_pending:
            return "unwanted"
        return "saved" if save_pending_verifier(store, callback_id, verifier) else "known"
