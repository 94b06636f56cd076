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
    "fp.paid AS freshbooks_payments, fp.paid_on AS freshbooks_paid_on, "
    "sp.paid AS stampli_payments, sp.paid_on AS stampli_paid_on, "
    "(SELECT max(json_extract(r.payload, '$.occurred_at')) FROM stampli_records AS r "
    "WHERE r.fb_bill_id = o.fb_bill_id AND r.export_kind = 'approval' "
    "AND lower(r.status) = 'approved') AS approved_at, "
    # `+d.status`: by the bill's own deliveries (kind, fb_id), not every delivered one.
    "(SELECT min(d.updated_at) FROM deliveries AS d WHERE d.kind = 'bill' "
    "AND d.fb_id = o.fb_bill_id AND +d.status = 'delivered') AS sent_at, "
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
    # Each side's payments summed up once, by bill, then joined: asked bill by bill, SQLite
    # scanned the whole payment index for every bill (it uses that index for ranges only).
    "LEFT JOIN (SELECT CAST(json_extract(payload, '$.bill_id') AS INTEGER) AS bill_id, "
    "group_concat(json_extract(payload, '$.amount') || ' ' || "
    "ifnull(json_extract(payload, '$.currency_code'), ''), ';') AS paid, "
    "max(json_extract(payload, '$.paid_date')) AS paid_on FROM source_objects "
    "WHERE kind = 'bill_payment' AND vis_state != 1 GROUP BY 1) AS fp "
    "ON fp.bill_id = o.fb_bill_id "
    # A payment exported again counts once (its latest row); one reported void not at all.
    "LEFT JOIN (SELECT fb_bill_id AS bill_id, "
    "group_concat(json_extract(payload, '$.amount') || ' ' || "
    "ifnull(json_extract(payload, '$.currency_code'), ''), ';') AS paid, "
    "max(json_extract(payload, '$.payment_date')) AS paid_on FROM stampli_records "
    "WHERE id IN (SELECT max(id) FROM stampli_records WHERE export_kind = 'payment' "
    "AND fb_bill_id IS NOT NULL "
    "GROUP BY fb_bill_id, ifnull(json_extract(payload, '$.payment_id'), 'row-' || id)) "
    "AND lower(status) NOT IN (SELECT value FROM json_each(?1)) GROUP BY fb_bill_id) AS sp "
    "ON sp.bill_id = o.fb_bill_id "
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
