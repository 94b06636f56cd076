"""Reconcile's inputs beyond payments and Stampli's rows, read from the store for one set
of bills: the versions of each bill sent to Stampli (with the total each carried), the
bills FreshBooks deleted, and the settings the matcher judges by.

A version's total is read from the rows fbstampli sent, through the template's
Invoice Total and Currency columns (`VersionCells`): what Stampli was given, not
what FreshBooks says now. A template without a total column gives no versions; the
version checks then say nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from fbstampli.config import ReconcileSettings
from fbstampli.models import Kind
from fbstampli.stampli.template import Template
from fbstampli.store import Store
from fbstampli.store.deliveries import DeliveryStatus, delivery_rows
from fbstampli.store.reconcile_facts import bill_deliveries, deleted_bills
from fbstampli.store.reconciliations import BillSet
from fbstampli.sync.bill_checks import Version
from fbstampli.sync.matching import BillFacts, Deleted, Rules
from fbstampli.sync.payment_match import Money, Tolerance
from fbstampli.sync.versions import VOID_PREFIX


@dataclass(frozen=True, slots=True)
class VersionCells:
    """Where a sent bill row holds its total and currency (column indexes)."""

    total: int
    currency: int | None = None


def version_cells(template: Template) -> VersionCells | None:
    """The template's bill columns for the total and currency; None without a total."""
    sources = [column.source for column in template.layout(Kind.BILL).columns]
    if "total_amount" not in sources:
        return None
    currency = sources.index("currency_code") if "currency_code" in sources else None
    return VersionCells(sources.index("total_amount"), currency)


def rules_of(settings: ReconcileSettings) -> Rules:
    return Rules(
        Tolerance(Decimal(settings.tolerance_amount), Decimal(settings.tolerance_percent)),
        settings.payment_window_days,
    )


def _moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _total(rows_text: str, cells: VersionCells, currency: str) -> Money | None:
    rows = delivery_rows(rows_text)
    if not rows or len(rows[0]) <= cells.total:
        return None
    row = rows[0]
    try:
        amount = Decimal(row[cells.total])
    except InvalidOperation:
        return None
    code = row[cells.currency] if cells.currency is not None and row[cells.currency] else currency
    return Money(amount, code)


def read_versions(
    store: Store, bills_read: BillSet, bills: Mapping[int, BillFacts], cells: VersionCells | None
) -> dict[int, tuple[Version, ...]]:
    """Per bill of `bills`, the versions sent to Stampli (or on their way), oldest first,
    numbered as they were sent; VOIDs count in the numbering but are not versions."""
    if cells is None:
        return {}
    versions: dict[int, list[Version]] = {}
    count: dict[int, int] = {}
    for row in bill_deliveries(store, bills_read):
        bill_id = int(row["fb_id"])
        count[bill_id] = count.get(bill_id, 0) + 1
        bill = bills.get(bill_id)
        if bill is None or str(row["content_hash"]).startswith(VOID_PREFIX):
            continue
        total = _total(str(row["rows"]), cells, bill.currency)
        queued = _moment(row["created_at"])
        if total is None or queued is None or row["status"] == DeliveryStatus.SUPERSEDED:
            continue
        delivered = row["status"] == DeliveryStatus.DELIVERED
        sent = _moment(row["updated_at"]) if delivered else None
        versions.setdefault(bill_id, []).append(Version(count[bill_id], total, queued, sent))
    return {bill_id: tuple(listed) for bill_id, listed in versions.items()}


def read_deleted(store: Store, bills_read: BillSet) -> dict[int, Deleted]:
    """The bills of the set FreshBooks deleted, each with when and whether its VOID went."""
    deleted = {}
    for row in deleted_bills(store, bills_read):
        bill_id = int(row["fb_id"])
        total = Decimal(str(row["total_amount"] or 0))
        at = _moment(row["deleted_at"])
        deleted[bill_id] = Deleted(
            BillFacts(bill_id, str(row["currency_code"] or ""), total),
            on=at.date() if at is not None else None,
            void_sent_at=_moment(row["void_sent_at"]),
        )
    return deleted
