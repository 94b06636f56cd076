"""Reconcile's inputs and its current outcomes, as the store keeps them.

Queries only; `sync/reconcile.py` decides what they mean. Every input is read
for one set of bills at a time (`BillSet`), so a reconcile's memory follows
the set, not the account; the few payload fields it needs are read by
SQLite's JSON functions, so no Python JSON parsing either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fbstampli.store import Row, Store

LAST_RUN_KEY = "reconcile.last_run"
# What the last reconcile covered: its time, the last Stampli record it read and the settings
# it judged by (a quiet run takes only what changed after it, under the same settings).
CHANGES_KEY = "reconcile.changes_since"

# Bill ids are FreshBooks integers; these bound "every id" in a range query.
LOWEST_ID = -(2**63)
HIGHEST_ID = 2**63 - 1

OutcomeKey = tuple[int | None, str]  # (FreshBooks bill id, Stampli invoice id)


@dataclass(frozen=True, slots=True)
class BillSet:
    """The bills one reconcile step reads: every id in [low, high], or exactly `ids`.

    A full pass walks ranges; a quiet run takes the ids that changed, which
    may lie far apart (an old bill paid, a new one sent): a range spanning them
    would read the whole history in between.
    """

    low: int = LOWEST_ID
    high: int = HIGHEST_ID
    ids: frozenset[int] | None = None

    def holds(self, bill_id: int) -> bool:
        if self.ids is None:
            return self.low <= bill_id <= self.high
        return bill_id in self.ids

    def params(self) -> tuple[object, ...]:
        return (self.low, self.high) if self.ids is None else (json.dumps(sorted(self.ids)),)


_IN_RANGE = "BETWEEN ? AND ? "
_IN_IDS = "IN (SELECT value FROM json_each(?)) "


def _where(bills: BillSet) -> str:
    return _IN_RANGE if bills.ids is None else _IN_IDS


def bill_ids_after(store: Store, after: int, limit: int) -> list[int]:
    """The next `limit` bill snapshot ids after `after`, deleted bills too: a full pass's
    ranges."""
    rows = store.query(
        "SELECT fb_id FROM source_objects WHERE kind = 'bill' AND fb_id > ? ORDER BY fb_id LIMIT ?",
        (after, limit),
    )
    return [int(row["fb_id"]) for row in rows]


_BILL_SNAPSHOTS = (
    "SELECT fb_id, vis_state, json_extract(payload, '$.currency_code') AS currency_code, "
    "json_extract(payload, '$.total_amount') AS total_amount FROM source_objects "
    "WHERE kind = 'bill' AND fb_id "
)


def bill_snapshots(store: Store, bills: BillSet) -> list[Row]:
    """The bill snapshots of `bills`, deleted ones too: (fb_id, vis_state, currency_code,
    total_amount)."""
    return store.query(_BILL_SNAPSHOTS + _where(bills), bills.params())


def bills_changed_since(store: Store, since: str, after_record: int, now: str) -> set[int]:
    """The bill ids whose reconcile inputs changed: a bill or payment snapshot saved at or
    after `since`, a bill first delivered since, or a Stampli record stored after the
    record id `after_record`; and the bills in progress whose outcome time alone may have
    changed by `now`."""
    changed: set[int] = set()
    for sql, params in (
        (
            "SELECT fb_id AS id FROM source_objects INDEXED BY source_objects_seen "
            "WHERE seen_at >= ? AND kind = 'bill'",
            (since,),
        ),
        (
            "SELECT json_extract(payload, '$.bill_id') AS id FROM source_objects "
            "INDEXED BY source_objects_seen WHERE seen_at >= ? AND kind = 'bill_payment'",
            (since,),
        ),
        (
            "SELECT fb_id AS id FROM deliveries WHERE status = 'delivered' AND updated_at >= ? "
            "AND kind = 'bill'",
            (since,),
        ),
        (
            "SELECT fb_bill_id AS id FROM stampli_records WHERE id > ? AND fb_bill_id IS NOT NULL",
            (after_record,),
        ),
        (
            "SELECT fb_bill_id AS id FROM reconcile_outcomes WHERE outcome = 'in_progress' "
            "AND recheck_at <= ? AND fb_bill_id IS NOT NULL",
            (now,),
        ),
    ):
        changed.update(
            int(row["id"]) for row in store.iterate(sql, params) if row["id"] is not None
        )
    return changed


def last_record_id(store: Store) -> int:
    row = store.query_one("SELECT max(id) AS id FROM stampli_records")
    return 0 if row is None or row["id"] is None else int(row["id"])


_PAYMENT_SNAPSHOTS = (
    "SELECT json_extract(payload, '$.bill_id') AS bill_id, "
    "json_extract(payload, '$.amount') AS amount, "
    "json_extract(payload, '$.currency_code') AS currency_code, "
    "fb_id, json_extract(payload, '$.paid_date') AS paid_date, "
    "json_extract(payload, '$.note') AS note "
    "FROM source_objects INDEXED BY source_objects_payment_bill "
    "WHERE kind = 'bill_payment' AND vis_state != 1 AND json_extract(payload, '$.bill_id') "
)


def payment_snapshots(store: Store, bills: BillSet) -> Iterator[Row]:
    """The live payment snapshots of `bills`: (bill_id, amount, currency_code, fb_id,
    paid_date, note), found through the index on the payload's bill id."""
    yield from store.iterate(_PAYMENT_SNAPSHOTS + _where(bills), bills.params())


_RECORD_FIELDS = (
    "SELECT export_kind, stampli_invoice_id, fb_bill_id, status, line, "
    "json_extract(payload, '$.occurred_at') AS occurred_at, "
    # Captures and approvals carry the invoice total Stampli read; payments their amount.
    "json_extract(payload, '$.amount') AS amount, "
    "json_extract(payload, '$.currency_code') AS currency_code, "
    "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.payment_id') END "
    "AS payment_id, "
    "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.payment_date') END "
    "AS payment_date, "
    "CASE WHEN export_kind = 'approval' THEN json_extract(payload, '$.approver') END "
    "AS approver "
    "FROM stampli_records "
)


def stampli_records(store: Store, bills: BillSet) -> list[Row]:
    """The stored Stampli records naming one of `bills`, in arrival order."""
    return store.query(
        _RECORD_FIELDS + "WHERE fb_bill_id " + _where(bills) + "ORDER BY id", bills.params()
    )


def stampli_records_naming_no_bill(store: Store) -> Iterator[Row]:
    """The stored Stampli records that carry no FreshBooks bill id, in arrival order."""
    yield from store.iterate(_RECORD_FIELDS + "WHERE fb_bill_id IS NULL ORDER BY id")


def records_naming_no_bill_after(store: Store, after_record: int) -> bool:
    """Whether a Stampli record naming no bill arrived after record id `after_record`."""
    return (
        store.query_one(
            "SELECT 1 FROM stampli_records WHERE id > ? AND fb_bill_id IS NULL LIMIT 1",
            (after_record,),
        )
        is not None
    )


_FIRST_DELIVERED = (
    "SELECT fb_id, min(updated_at) AS at FROM deliveries "
    "WHERE kind = 'bill' AND status = 'delivered' AND fb_id "
)


def first_delivered_at(store: Store, bills: BillSet) -> dict[int, datetime]:
    """Bill id -> when its first version reached Stampli, for those of `bills` that did."""
    sql = _FIRST_DELIVERED + _where(bills) + "GROUP BY fb_id"
    return {
        int(row["fb_id"]): datetime.fromisoformat(row["at"])
        for row in store.iterate(sql, bills.params())
    }


_UNREAD = (
    "SELECT DISTINCT r.fb_bill_id AS id FROM stampli_records AS r "
    "WHERE r.fb_bill_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM source_objects AS s "
    "WHERE s.kind = 'bill' AND s.fb_id = r.fb_bill_id) "
)
# The records that arrived after a record id, by their ids (left to choose, SQLite walked
# the bill id index from its start).
_UNREAD_AFTER = (
    "SELECT DISTINCT r.fb_bill_id AS id FROM stampli_records AS r NOT INDEXED "
    "WHERE r.id > ? AND r.fb_bill_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM source_objects "
    "AS s WHERE s.kind = 'bill' AND s.fb_id = r.fb_bill_id) "
)


def unread_bill_ids(store: Store, *, after_record: int | None) -> list[int]:
    """Bill ids Stampli's records name that fbstampli never read from FreshBooks (no snapshot,
    not even a deleted one): named by any record, or (`after_record`) by the records that
    arrived after that record id."""
    if after_record is None:
        rows = store.query(_UNREAD + "ORDER BY r.fb_bill_id")
    else:
        rows = store.query(_UNREAD_AFTER + "ORDER BY r.fb_bill_id", (after_record,))
    return [int(row["id"]) for row in rows]


_OUTCOMES = (
    "SELECT fb_bill_id, stampli_invoice_id, outcome, detail, recheck_at FROM reconcile_outcomes "
)


Stored = tuple[str, str, str | None]  # (outcome, detail, recheck_at)


def outcomes(store: Store, bills: BillSet) -> dict[OutcomeKey, Stored]:
    """The current (outcome, detail, recheck_at) of each of `bills`."""
    return _outcomes(store.iterate(_OUTCOMES + "WHERE fb_bill_id " + _where(bills), bills.params()))


def outcomes_naming_no_bill(store: Store) -> dict[OutcomeKey, Stored]:
    return _outcomes(store.iterate(_OUTCOMES + "WHERE fb_bill_id IS NULL"))


def _outcomes(rows: Iterable[Row]) -> dict[OutcomeKey, Stored]:
    return {
        (row["fb_bill_id"], str(row["stampli_invoice_id"])): (
            str(row["outcome"]),
            str(row["detail"]),
            row["recheck_at"],
        )
        for row in rows
    }


def save_outcomes(
    store: Store,
    run_id: int,
    changed: Iterable[tuple[int | None, str, str, str, str | None]],
    gone: Iterable[OutcomeKey],
) -> None:
    """Write the (bill id, invoice id, outcome, detail, recheck_at) that are new or changed,
    and remove the outcomes of keys no longer reconciled."""
    store.execute_many(
        "INSERT INTO reconcile_outcomes "
        "(fb_bill_id, stampli_invoice_id, outcome, detail, recheck_at, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ifnull(fb_bill_id, 0), stampli_invoice_id) "
        "DO UPDATE SET outcome = excluded.outcome, detail = excluded.detail, "
        "recheck_at = excluded.recheck_at, run_id = excluded.run_id",
        [(*row, run_id) for row in changed],
    )
    store.execute_many(
        "DELETE FROM reconcile_outcomes WHERE ifnull(fb_bill_id, 0) = ifnull(?, 0) "
        "AND stampli_invoice_id = ?",
        list(gone),
    )


def outcome_counts(store: Store) -> dict[str, int]:
    return {
        str(row["outcome"]): int(row["n"])
        for row in store.query(
            "SELECT outcome, count(*) AS n FROM reconcile_outcomes GROUP BY outcome"
        )
    }


def current_outcomes(store: Store) -> Iterator[Row]:
    """Every current outcome for the report: bills by id, then Stampli invoices FreshBooks
    does not know, by invoice id. Streamed: a report of 250,000 bills is never held whole."""
    yield from store.iterate(
        "SELECT fb_bill_id, stampli_invoice_id, outcome, detail FROM reconcile_outcomes "
        "ORDER BY outcome = 'unknown_to_freshbooks', "
        "CASE WHEN outcome = 'unknown_to_freshbooks' THEN stampli_invoice_id END, "
        "fb_bill_id, stampli_invoice_id"
    )


def latest_outcomes(store: Store) -> tuple[int | None, dict[str, int]]:
    """The newest reconcile run's id and the current count of bills per outcome."""
    last = store.get_value(LAST_RUN_KEY)
    if last is None:
        return None, {}
    return int(last), outcome_counts(store)


def changes_mark(store: Store) -> dict[str, Any] | None:
    """What the last reconcile covered (`save_changes_mark`), or None before the first."""
    stored = store.get_json(CHANGES_KEY)
    return stored if isinstance(stored, dict) else None


def save_changes_mark(store: Store, *, at: str, record: int | None, settings: list[object]) -> None:
    store.put_json(CHANGES_KEY, {"at": at, "record": record, "settings": settings})
