"""The coding lists as last read: the expense categories' and taxes' snapshots.

A category or tax is a source object like a vendor (`store.snapshots` writes it); this reads
back the ones still standing, so one FreshBooks no longer lists can be told as deleted.
Runs inside or outside the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from fbstampli.models import ExpenseCategory, Kind, Tax, VisState
from fbstampli.store import Store


def _standing(store: Store, kind: Kind) -> list[dict[str, Any]]:
    rows = store.query(
        "SELECT payload FROM source_objects WHERE kind = ? AND vis_state != ? ORDER BY fb_id",
        (kind.value, int(VisState.DELETED)),
    )
    return [json.loads(row["payload"]) for row in rows]


def standing_categories(store: Store) -> list[ExpenseCategory]:
    """The categories last read and not deleted, as their snapshots hold them."""
    return [_category(data) for data in _standing(store, Kind.CATEGORY)]


def standing_taxes(store: Store) -> list[Tax]:
    """The taxes last read and not deleted, as their snapshots hold them."""
    return [
        Tax(
            fb_id=int(str(data["fb_id"])),
            name=str(data.get("name") or ""),
            percent=Decimal(str(data["percent"])) if data.get("percent") is not None else None,
            number=str(data.get("number") or ""),
            compound=bool(data.get("compound")),
            vis_state=VisState(int(str(data.get("vis_state", 0)))),
            updated_at=_moment(data.get("updated_at")),
        )
        for data in _standing(store, Kind.TAX)
    ]


def _moment(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _category(data: dict[str, object]) -> ExpenseCategory:
    parent = data.get("parent_id")
    updated = data.get("updated_at")
    return ExpenseCategory(
        fb_id=int(str(data["fb_id"])),
        name=str(data.get("name") or ""),
        parent_id=int(str(parent)) if parent is not None else None,
        code=str(data.get("code") or ""),
        is_cogs=bool(data.get("is_cogs")),
        vis_state=VisState(int(str(data.get("vis_state", 0)))),
        updated_at=datetime.fromisoformat(str(updated)) if updated else None,
    )
