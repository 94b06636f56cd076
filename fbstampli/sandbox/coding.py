"""The sandbox's coding lists: an account's expense categories, as FreshBooks lists them at
`/accounting/account/<id>/expenses/categories`, and its taxes at `.../taxes/taxes` (the paths
and shapes of FreshBooks' Python SDK).

A new FreshBooks account comes with a tree of categories (parents and their children, a
cost-of-goods-sold one); the ids the seeded bill lines name (1001-1008) are among them.
Test-only, like the rest of the sandbox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

JsonObject = dict[str, Any]

# (id, name, parent id or None, is_cogs); children after their parents.
# fmt: off
_DEFAULT: tuple[tuple[int, str, int | None, bool], ...] = (
    (901, "Office Expenses & Postage", None, False), (1001, "Office Supplies", 901, False),
    (1005, "Software", 901, False), (1006, "Shipping", 901, False),
    (1002, "Travel", None, False), (1009, "Airfare", 1002, False),
    (1010, "Hotel/Lodging", 1002, False), (1003, "Utilities", None, False),
    (1004, "Professional Services", None, False), (1011, "Legal Fees", 1004, False),
    (1007, "Meals and Entertainment", None, False), (1008, "Rent", None, False),
    (1012, "Advertising", None, False), (1013, "Cost of Goods Sold", None, True),
)
# fmt: on
CREATED = datetime(2023, 6, 1, 12, 0, tzinfo=UTC)


def default_categories() -> dict[int, JsonObject]:
    """The categories of a new account, by id, with the stored fields of each."""
    return {
        fb_id: {
            "id": fb_id,
            "category": name,
            "parentid": parent,
            "is_cogs": cogs,
            "is_editable": False,
            "vis_state": 0,
            "created_at": CREATED,
            "updated_at": CREATED,
        }
        for fb_id, name, parent, cogs in _DEFAULT
    }


def render_category(category: JsonObject) -> JsonObject:
    """A row of the list: `categoryid` and `id` both, times zone-less UTC as bills have."""
    return {
        "categoryid": category["id"],
        "id": category["id"],
        "category": category["category"],
        "parentid": category["parentid"],
        "is_cogs": category["is_cogs"],
        "is_editable": category["is_editable"],
        "vis_state": category["vis_state"],
        "created_at": category["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        "updated_at": category["updated_at"].strftime("%Y-%m-%d %H:%M:%S"),
    }


# (id, name, percent, registration number, compound); the names the seeded lines carry.
# fmt: off
_TAXES: tuple[tuple[int, str, str, str, bool], ...] = (
    (1, "Sales Tax", "8.25", "", False), (2, "HST", "13", "123456789RT0001", False),
    (3, "VAT", "21", "NL123456789B01", False), (4, "GST", "5", "123456789RT0001", False),
    (5, "QST", "9.975", "1234567890TQ0001", True),
)
# fmt: on


def default_taxes() -> dict[int, JsonObject]:
    return {
        fb_id: {
            "id": fb_id,
            "name": name,
            "amount": percent,
            "number": number,
            "compound": compound,
            "vis_state": 0,
            "updated_at": CREATED,
        }
        for fb_id, name, percent, number, compound in _TAXES
    }


def render_tax(tax: JsonObject) -> JsonObject:
    """A row of the list: `taxid` and `id`, the rate as text in `amount`, time in `updated`."""
    return {
        "taxid": tax["id"],
        "id": tax["id"],
        "name": tax["name"],
        "amount": tax["amount"],
        "number": tax["number"],
        "compound": tax["compound"],
        "vis_state": tax["vis_state"],
        "updated": tax["updated_at"].strftime("%Y-%m-%d %H:%M:%S"),
    }
