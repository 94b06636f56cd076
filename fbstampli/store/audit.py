"""Reading the audit trail (rows are appended by `Store.audit`; never updated or deleted)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fbstampli.store import Store


def audit_rows(store: Store, *, bill: int | None, since: date | None) -> list[dict[str, Any]]:
    """Audit rows in time order; one bill's trail includes its payments' rows."""
    clauses: list[str] = []
    params: list[object] = []
    if bill is not None:
        clauses.append(
            "((kind = 'bill' AND fb_id = ?) OR (kind = 'bill_payment' AND fb_id IN "
            "(SELECT fb_id FROM source_objects WHERE kind = 'bill_payment' "
            "AND json_extract(payload, '$.bill_id') = ?)))"
        )
        params.extend([bill, bill])
    if since is not None:
        clauses.append("at >= ?")
        params.append(since.isoformat())
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.query(
        f"SELECT at, kind, fb_id, action, detail, run_id FROM audit {where} ORDER BY id",  # noqa: S608
        tuple(params),
    )
    return [dict(row) for row in rows]


def last_change(store: Store) -> str:
    """When the state last changed; taking a backup is not a change (its row comes after)."""
    row = store.query_one("SELECT max(at) AS at FROM audit WHERE action != 'state_backup'")
    return str(row["at"]) if row and row["at"] else ""
