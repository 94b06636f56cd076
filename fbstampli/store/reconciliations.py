"""Reconciliation results, and the Stampli records reconcile reads, as the store keeps them.

Queries only; `sync/reconcile.py` decides what they mean.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fbstampli.store import Row, Store


def stampli_record_facts(store: Store) -> Iterator[Row]:
    """Every stored Stampli record in arrival order, with the few payload fields reconcile needs.

    The fields are read by SQLite's JSON functions, so 100,000 rows cost no
    Python JSON parsing.
    """
    yield from store.iterate(
        "SELECT export_kind, stampli_invoice_id, fb_bill_id, status, line, "
        "CASE WHEN export_kind = 'approval' THEN json_extract(payload, '$.occurred_at') END "
        "AS occurred_at, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.amount') END AS amount, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.payment_id') END "
        "AS payment_id, "
        "CASE WHEN export_kind = 'payment' THEN json_extract(payload, '$.currency_code') END "
        "AS currency_code "
        "FROM stampli_records ORDER BY id"
    )


def add_results(store: Store, rows: Sequence[tuple[Any, ...]]) -> None:
    """(run_id, fb_bill_id, stampli_invoice_id, outcome, detail) rows."""
    store.execute_many(
        "INSERT INTO reconciliations "
        "(run_id, fb_bill_id, stampli_invoice_id, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        list(rows),
    )


def latest_outcomes(store: Store) -> tuple[int | None, dict[str, int]]:
    """The newest reconcile run's id and its count of bills per outcome."""
    latest = store.query_one("SELECT max(run_id) AS run FROM reconciliations")
    if latest is None or latest["run"] is None:
        return None, {}
    rows = store.query(
        "SELECT outcome, count(*) AS n FROM reconciliations WHERE run_id = ? GROUP BY outcome",
        (latest["run"],),
    )
    return int(latest["run"]), {str(row["outcome"]): int(row["n"]) for row in rows}


def previous_outcomes(store: Store, before_run: int) -> dict[tuple[int | None, str], str]:
    """Each bill's outcome in the newest reconcile run before `before_run`, keyed by
    (FreshBooks bill id, Stampli invoice id): what a new outcome is compared with."""
    latest = store.query_one(
        "SELECT max(run_id) AS run FROM reconciliations WHERE run_id < ?", (before_run,)
    )
    if latest is None or latest["run"] is None:
        return {}
    rows = store.query(
        "SELECT fb_bill_id, stampli_invoice_id, outcome FROM reconciliations WHERE run_id = ?",
        (latest["run"],),
    )
    return {
        (row["fb_bill_id"], str(row["stampli_invoice_id"] or "")): str(row["outcome"])
        for row in rows
    }
