"""The reconcile report's rows as people read them: each current outcome with its bill's
invoice number, vendor, total, dates, and what each side paid. Queries only.

Streamed in the order `reconciliations.current_outcomes` gives (bills by id, then Stampli
invoices FreshBooks does not know), one row at a time; each row's payments are found
through the indexes on a payment's bill id and a record's bill id, so a report of 250,000
bills costs a few index lookups per bill and never holds the report whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from fbstampli.store import Row, Store

_ROWS = (
    "SELECT o.fb_bill_id, o.stampli_invoice_id, o.outcome, o.detail, "
    "json_extract(b.payload, '$.bill_number') AS bill_number, "
    "json_extract(v.payload, '$.name') AS vendor, "
    "json_extract(b.payload, '$.total_amount') AS bill_total, "
    "json_extract(b.payload, '$.currency_code') AS currency, "
    "json_extract(b.payload, '$.issue_date') AS issue_date, "
    "json_extract(b.payload, '$.due_date') AS due_date, "
    "(SELECT group_concat(json_extract(p.payload, '$.amount') || ' ' || "
    "ifnull(json_extract(p.payload, '$.currency_code'), ''), ';') "
    "FROM source_objects AS p INDEXED BY source_objects_payment_bill "
    "WHERE p.kind = 'bill_payment' AND p.vis_state != 1 "
    "AND json_extract(p.payload, '$.bill_id') = o.fb_bill_id) AS freshbooks_payments, "
    "(SELECT max(json_extract(p.payload, '$.paid_date')) "
    "FROM source_objects AS p INDEXED BY source_objects_payment_bill "
    "WHERE p.kind = 'bill_payment' AND p.vis_state != 1 "
    "AND json_extract(p.payload, '$.bill_id') = o.fb_bill_id) AS freshbooks_paid_on, "
    "(SELECT group_concat(json_extract(r.payload, '$.amount') || ' ' || "
    "ifnull(json_extract(r.payload, '$.currency_code'), ''), ';') "
    "FROM stampli_records AS r WHERE r.id IN (SELECT max(id) FROM stampli_records "
    "WHERE fb_bill_id = o.fb_bill_id AND export_kind = 'payment' "
    "GROUP BY ifnull(json_extract(payload, '$.payment_id'), 'row-' || id)) "
    "AND lower(r.status) NOT IN (SELECT value FROM json_each(?1))) AS stampli_payments, "
    "(SELECT max(json_extract(r.payload, '$.payment_date')) FROM stampli_records AS r "
    "WHERE r.fb_bill_id = o.fb_bill_id AND r.export_kind = 'payment' "
    "AND lower(r.status) NOT IN (SELECT value FROM json_each(?1))) "
    "AS stampli_paid_on, "
    "(SELECT max(json_extract(r.payload, '$.occurred_at')) FROM stampli_records AS r "
    "WHERE r.fb_bill_id = o.fb_bill_id AND r.export_kind = 'approval' "
    "AND lower(r.status) = 'approved') AS approved_at, "
    "(SELECT min(d.updated_at) FROM deliveries AS d WHERE d.kind = 'bill' "
    "AND d.fb_id = o.fb_bill_id AND d.status = 'delivered') AS sent_at, "
    # Only for a bill FreshBooks has no snapshot of (rare): what Stampli calls it.
    "CASE WHEN b.fb_id IS NULL THEN (SELECT json_extract(r.payload, '$.vendor_name') "
    "FROM stampli_records AS r WHERE r.fb_bill_id = o.fb_bill_id OR (o.fb_bill_id IS NULL "
    "AND r.fb_bill_id IS NULL AND r.stampli_invoice_id = o.stampli_invoice_id) "
    "ORDER BY r.id DESC LIMIT 1) END AS stampli_vendor, "
    "CASE WHEN b.fb_id IS NULL THEN (SELECT json_extract(r.payload, '$.invoice_number') "
    "FROM stampli_records AS r WHERE r.fb_bill_id = o.fb_bill_id OR (o.fb_bill_id IS NULL "
    "AND r.fb_bill_id IS NULL AND r.stampli_invoice_id = o.stampli_invoice_id) "
    "ORDER BY r.id DESC LIMIT 1) END AS stampli_invoice_number "
    "FROM reconcile_outcomes AS o "
    "LEFT JOIN source_objects AS b ON b.kind = 'bill' AND b.fb_id = o.fb_bill_id "
    "LEFT JOIN source_objects AS v ON v.kind = 'vendor' "
    "AND v.fb_id = json_extract(b.payload, '$.vendor_id') "
    "ORDER BY o.outcome = 'unknown_to_freshbooks', "
    "CASE WHEN o.outcome = 'unknown_to_freshbooks' THEN o.stampli_invoice_id END, "
    "o.fb_bill_id, o.stampli_invoice_id"
)


def report_rows(store: Store, void_statuses: Iterable[str]) -> Iterator[Row]:
    """Every current outcome with its bill and payments (amounts as `"12.50 USD;3.00 USD"`),
    streamed."""
    yield from store.iterate(_ROWS, (json.dumps(sorted(void_statuses)),))


def run_finished_at(store: Store, run_id: int) -> str | None:
    """When run `run_id` finished (UTC text), or None while it runs or when it is unknown."""
    row = store.query_one("SELECT finished_at FROM runs WHERE id = ?", (run_id,))
    return None if row is None or row["finished_at"] is None else str(row["finished_at"])
