"""The coding list as last read: the expense categories' snapshots (kind `expense_category`).

A category is a source object like a vendor (`store.snapshots` writes it); this reads back
the ones still standing, so a category FreshBooks no longer lists can be told as deleted.
Runs inside or outside the caller's transaction.
"""

from __future__ import annotations

import json
from datetime import datetime

from fbstampli.models import ExpenseCategory, Kind, VisState
from fbstampli.store import Store


def standing_categories(store: Store) -> list[ExpenseCategory]:
    """The categories last read and not deleted, as their snapshots hold them."""
    rows = store.query(
        "SELECT payload FROM source_objects WHERE kind = ? AND vis_state != ? ORDER BY fb_id",
        (Kind.CATEGORY.value, int(VisState.DELETED)),
    )
    return [_category(json.loads(row["payload"])) for row in rows]


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
