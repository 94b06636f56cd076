"""Source objects as the state store keeps them: a JSON payload per object, and back.

The one owner of the `source_objects` table and of its payload's shape: the
payload is written by `payload_of` and read back here (other store modules
only read single fields of it in SQL).

The payload is the audit trail's copy of what FreshBooks said, and the
incremental pass re-reads it: a bill that did not change is not fetched
again, yet a payment row or a renamed vendor may need it rendered.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from fbstampli.models import Bill, BillLine, BillPayment, Kind, SourceObject, VisState
from fbstampli.store import Store

# dataclass type -> its field names, read once: `dataclasses.fields` per object was a
# tenth of a first sync's CPU.
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, None for any other type (both remembered)."""
    try:
        return _FIELD_NAMES[cls]
    except KeyError:
        names = (
            tuple(f.name for f in dataclasses.fields(cls))
            if dataclasses.is_dataclass(cls)
            else None
        )
        _FIELD_NAMES[cls] = names
        return names


# Exact types written as they are, and as their text: the common cases, tested first.
_AS_IS = frozenset({str, int, float, bool, type(None)})
_AS_TEXT = frozenset({Decimal, date, datetime})


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists, money and dates as text.

    Written out rather than `dataclasses.asdict`, whose deep copies made this a
    quarter of a 10,000-bill first sync.
    """
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind in _AS_TEXT:
        return str(value)
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal | date):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def payload_of(obj: SourceObject) -> str:
    """A JSON copy of the object for the audit trail, reconciliation and later rendering."""
    return json.dumps(_plain(obj), sort_keys=True, default=str)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _moment(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def _line(data: dict[str, Any]) -> BillLine:
    return BillLine(
        list_index=int(data["list_index"]),
        description=str(data["description"]),
        quantity=Decimal(data["quantity"]),
        unit_cost=Decimal(data["unit_cost"]),
        amount=Decimal(data["amount"]),
        category=str(data.get("category", "")),
        category_id=data.get("category_id"),
        tax_name1=str(data.get("tax_name1", "")),
        tax_percent1=_decimal(data.get("tax_percent1")),
        tax_amount1=_decimal(data.get("tax_amount1")),
        tax_name2=str(data.get("tax_name2", "")),
        tax_percent2=_decimal(data.get("tax_percent2")),
        tax_amount2=_decimal(data.get("tax_amount2")),
    )


def bill_from_payload(text: str) -> Bill:
    """The inverse of `payload_of` for a bill; a payload we wrote ourselves, so trusted."""
    data = json.loads(text)
    return Bill(
        fb_id=int(data["fb_id"]),
        vendor_id=int(data["vendor_id"]),
        bill_number=str(data["bill_number"]),
        issue_date=date.fromisoformat(data["issue_date"]),
        due_date=date.fromisoformat(data["due_date"]),
        currency_code=str(data["currency_code"]),
        amount=Decimal(data["amount"]),
        tax_amount=Decimal(data["tax_amount"]),
        total_amount=Decimal(data["total_amount"]),
        outstanding=Decimal(data["outstanding"]),
        paid=Decimal(data["paid"]),
        status=str(data["status"]),
        description=str(data.get("description", "")),
        language=str(data.get("language", "")),
        lines=tuple(_line(line) for line in data.get("lines", ())),
        vis_state=VisState(int(data.get("vis_state", 0))),
        created_at=_moment(data.get("created_at")),
        updated_at=_moment(data.get("updated_at")),
        due_offset_days=data.get("due_offset_days"),
        attachment_jwt=str(data.get("attachment_jwt", "")),
        document_file=str(data.get("document_file", "")),
        document_sha256=str(data.get("document_sha256", "")),
        document_status=str(data.get("document_status", "")),
    )


_BILLS_BY_ID = (
    "SELECT payload FROM source_objects WHERE kind = 'bill' "
    "AND fb_id IN (SELECT value FROM json_each(?))"
)
_BILLS_BY_VENDOR = (  # through the index on the bill's vendor id, only when one was renamed
    "SELECT payload FROM source_objects INDEXED BY source_objects_bill_vendor WHERE kind = 'bill' "
    "AND json_extract(payload, '$.vendor_id') IN (SELECT value FROM json_each(?))"
)


def stored_bills(
    store: Store, *, ids: Collection[int] = (), vendor_ids: Collection[int] = ()
) -> dict[int, Bill]:
    """Bills from their snapshots: those with the given ids, and those of the given vendors."""
    bills: dict[int, Bill] = {}
    for sql, values in ((_BILLS_BY_ID, ids), (_BILLS_BY_VENDOR, vendor_ids)):
        if not values:
            continue
        for row in store.iterate(sql, (json.dumps(sorted(set(values))),)):
            bill = bill_from_payload(str(row["payload"]))
            bills[bill.fb_id] = bill
    return bills


def payment_from_payload(text: str) -> BillPayment:
    """The inverse of `payload_of` for a bill payment; a payload we wrote ourselves."""
    data = json.loads(text)
    return BillPayment(
        fb_id=int(data["fb_id"]),
        bill_id=int(data["bill_id"]),
        amount=Decimal(data["amount"]),
        currency_code=str(data["currency_code"]),
        paid_date=date.fromisoformat(data["paid_date"]),
        payment_type=str(data.get("payment_type", "")),
        note=str(data.get("note", "")),
        vis_state=VisState(int(data.get("vis_state", 0))),
    )


# Two steps, each by its index: the renamed vendors' bills, then those bills' payments.
# (As one join SQLite walked the whole payment index once per bill.)
_BILL_IDS_BY_VENDOR = (
    "SELECT fb_id FROM source_objects INDEXED BY source_objects_bill_vendor WHERE kind = 'bill' "
    "AND json_extract(payload, '$.vendor_id') IN (SELECT value FROM json_each(?))"
)
_LIVE_PAYMENTS_OF_BILLS = (
    "SELECT payload FROM source_objects INDEXED BY source_objects_payment_bill "
    "WHERE kind = 'bill_payment' AND vis_state != 1 "
    "AND json_extract(payload, '$.bill_id') IN (SELECT value FROM json_each(?))"
)


def stored_payments_of_vendors(store: Store, vendor_ids: Collection[int]) -> list[BillPayment]:
    """The live payments, from their snapshots, of the bills of these vendors."""
    if not vendor_ids:
        return []
    bills = [
        int(row["fb_id"])
        for row in store.iterate(_BILL_IDS_BY_VENDOR, (json.dumps(sorted(set(vendor_ids))),))
    ]
    if not bills:
        return []
    return [
        payment_from_payload(str(row["payload"]))
        for row in store.iterate(_LIVE_PAYMENTS_OF_BILLS, (json.dumps(bills),))
    ]


_STAMPS_BY_ID = (
    "SELECT fb_id, updated_at FROM source_objects WHERE kind = ? "
    "AND fb_id IN (SELECT value FROM json_each(?))"
)
_PAYMENTS_OF_BILLS = (  # the moved bills' payments, through the index on their bill id
    "SELECT fb_id, CAST(json_extract(payload, '$.bill_id') AS INTEGER) AS bill_id "
    "FROM source_objects INDEXED BY source_objects_payment_bill "
    "WHERE kind = 'bill_payment' AND vis_state != 1 "
    "AND json_extract(payload, '$.bill_id') IN (SELECT value FROM json_each(?))"
)
_RESTAMP = (
    "UPDATE source_objects SET updated_at = ? WHERE kind = ? AND fb_id = ? AND updated_at IS NOT ?"
)


def stored_stamps(store: Store, kind: Kind, ids: Collection[int]) -> dict[int, str | None]:
    """The `updated_at` each stored snapshot of these ids was last seen with."""
    if not ids:
        return {}
    rows = store.iterate(_STAMPS_BY_ID, (kind.value, json.dumps(sorted(set(ids)))))
    return {int(row["fb_id"]): row["updated_at"] for row in rows}


def stored_payment_ids(store: Store, bill_ids: Collection[int]) -> dict[int, set[int]]:
    """The ids of the live payments last seen on each of these bills."""
    found: dict[int, set[int]] = {}
    if not bill_ids:
        return found
    for row in store.iterate(_PAYMENTS_OF_BILLS, (json.dumps(sorted(set(bill_ids))),)):
        found.setdefault(int(row["bill_id"]), set()).add(int(row["fb_id"]))
    return found


def restamp(store: Store, kind: Kind, stamps: Iterable[tuple[int, str]]) -> None:
    """Record a newer `updated_at` on snapshots whose content did not change.

    A bill can move without its rows changing (a payment's note was edited);
    remembering the stamp keeps the next run from reading that bill's payments again.
    """
    rows = [(stamp, kind.value, fb_id, stamp) for fb_id, stamp in stamps]
    if rows:
        store.execute_many(_RESTAMP, rows)


_RECONCILE_FACTS = {
    Kind.BILL: (
        "SELECT fb_id, json_extract(payload, '$.currency_code') AS a, "
        "json_extract(payload, '$.total_amount') AS b FROM source_objects WHERE kind = 'bill' "
        "AND fb_id IN (SELECT value FROM json_each(?))"
    ),
    Kind.PAYMENT: (
        "SELECT fb_id, json_extract(payload, '$.amount') AS a, "
        "json_extract(payload, '$.currency_code') AS b, json_extract(payload, '$.bill_id') AS c "
        "FROM source_objects WHERE kind = 'bill_payment' "
        "AND fb_id IN (SELECT value FROM json_each(?))"
    ),
}


def stored_reconcile_facts(
    store: Store, kind: Kind, ids: Collection[int]
) -> dict[int, tuple[object, ...]]:
    """What reconcile reads of these bills' (currency, total) or payments' (amount, currency,
    bill) snapshots, as `payload_of` wrote them."""
    if not ids:
        return {}
    rows = store.iterate(_RECONCILE_FACTS[kind], (json.dumps(sorted(set(ids))),))
    if kind is Kind.BILL:
        return {int(row["fb_id"]): (row["a"], row["b"]) for row in rows}
    return {int(row["fb_id"]): (row["a"], row["b"], row["c"]) for row in rows}


# ---- writing snapshots, and what a run reads of them besides bills and payments --------------


_SAVE_SNAPSHOT = (
    "INSERT INTO source_objects (kind, fb_id, updated_at, vis_state, content_hash, payload, "
    "seen_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, fb_id) DO UPDATE SET "
    "updated_at = excluded.updated_at, vis_state = excluded.vis_state, "
    "content_hash = excluded.content_hash, payload = excluded.payload, "
    "seen_at = excluded.seen_at"
)


def save_snapshot(
    store: Store,
    *,
    kind: Kind,
    fb_id: int,
    updated_at: str | None,
    vis_state: int,
    content_hash: str,
    payload: str,
) -> None:
    store.execute(
        _SAVE_SNAPSHOT,
        (kind.value, fb_id, updated_at, vis_state, content_hash, payload, store.now_text()),
    )


def save_snapshots(
    store: Store, snapshots: Sequence[tuple[Kind, int, str | None, int, str, str]]
) -> None:
    """`save_snapshot` for a slice at once: (kind, fb_id, updated_at, vis_state, hash, payload)."""
    now = store.now_text()
    store.execute_many(
        _SAVE_SNAPSHOT,
        [(kind.value, fb_id, *rest, now) for kind, fb_id, *rest in snapshots],
    )


def has_snapshots(store: Store) -> bool:
    """Whether anything was ever read from FreshBooks (false before the first sync)."""
    return store.query_one("SELECT 1 FROM source_objects LIMIT 1") is not None


def snapshots_for(store: Store, kind: Kind, ids: Iterable[int]) -> dict[int, tuple[str, int]]:
    """(content hash, vis_state) of the stored snapshots of these ids only.

    What one page of a listing is compared with: memory follows the page,
    not the account.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    return {
        int(row["fb_id"]): (str(row["content_hash"]), int(row["vis_state"]))
        for row in store.iterate(
            "SELECT fb_id, content_hash, vis_state FROM source_objects WHERE kind = ? "
            "AND fb_id IN (SELECT value FROM json_each(?))",
            (kind.value, json.dumps(wanted)),
        )
    }


class VendorNames(dict[int, str]):
    """Vendor id -> name: the names a run has set (what it fetched), and any other read from
    its vendor snapshot on first use, once.

    A run renders the bills it fetched, which name a few vendors; reading every vendor's
    snapshot up front made each 15-minute run cost the whole vendor history.
    """

    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store
        self._absent: set[int] = set()

    def _load(self, vendor_id: int) -> bool:
        if vendor_id in self._absent:
            return False
        row = self._store.query_one(
            "SELECT json_extract(payload, '$.name') AS name FROM source_objects "
            "WHERE kind = 'vendor' AND fb_id = ?",
            (vendor_id,),
        )
        if row is None:
            self._absent.add(vendor_id)
            return False
        super().__setitem__(vendor_id, str(row["name"] or ""))
        return True

    def __bool__(self) -> bool:
        """Never falsy: a name not read yet is still there to be read (`names or {}` would
        drop them all)."""
        return True

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or (isinstance(key, int) and self._load(key))

    def __missing__(self, key: int) -> str:
        if self._load(key):
            return super().__getitem__(key)
        raise KeyError(key)

    def get(self, key: int, default: str | None = None) -> str | None:  # type: ignore[override]
        if super().__contains__(key) or self._load(key):
            return super().__getitem__(key)
        return default

    def __setitem__(self, key: int, value: str) -> None:
        self._absent.discard(key)
        super().__setitem__(key, value)


def vendor_names(store: Store) -> VendorNames:
    return VendorNames(store)


_LIVE_PAYMENT_BILLS = (
    "SELECT fb_id, CAST(json_extract(payload, '$.bill_id') AS INTEGER) AS bill_id "
    "FROM source_objects WHERE kind = 'bill_payment' AND vis_state != 1"
)


def stored_live_payments(store: Store) -> dict[int, int]:
    """Every payment last seen live, with its bill: what a listing of all payments should hold."""
    return {int(row["fb_id"]): int(row["bill_id"]) for row in store.iterate(_LIVE_PAYMENT_BILLS)}
