"""The coding lists: FreshBooks' expense categories, what a bill line is coded to, and taxes.

The path is the one FreshBooks' own Python SDK uses (`expenses_categories`:
`/accounting/account/<id>/expenses/categories`, list key `categories`, read-only). It
needs the scope `user:expenses:read`, which a login granted before this release lacks:
a refusal (403) is learnt as the fact `CATEGORIES` and believed for a day, and the run
goes on without the list; it never stops the bills. The taxes are the SDK's `taxes`
(`/accounting/account/<id>/taxes/taxes`, list key `taxes`), under `user:taxes:read`,
refused the same way (the fact `TAXES`).
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fbstampli.config import CODING_SCOPES
from fbstampli.errors import AuthRequiredError
from fbstampli.freshbooks.client.errors import NotFoundError
from fbstampli.freshbooks.client.session import Session
from fbstampli.freshbooks.parse import _Reader, parse_expense_category
from fbstampli.models import ExpenseCategory, Tax
from fbstampli.models.behaviour import CATEGORIES, TAXES

log = logging.getLogger(__name__)

CATEGORIES_SCOPE, TAXES_SCOPE = CODING_SCOPES


class Coding(Session):
    """Listing the expense categories, for the client that lists the bills."""

    def list_expense_categories(self) -> list[ExpenseCategory] | None:
        """Every expense category FreshBooks lists (active and archived), or None when this
        login may not read them (learnt, and not asked again for a day)."""
        if self.learnt.stands(CATEGORIES, "refused"):
            return None
        path = f"/accounting/account/{quote(self._account_id, safe='')}/expenses/categories"
        what = f"the expense categories of account {self._account_id}"
        try:
            rows = [row for page in self._pages(path, "categories", what, {}) for row in page]
        except AuthRequiredError as error:  # a 403: the scope is missing
            self.learnt.learn(CATEGORIES, "refused", _short(error, CATEGORIES_SCOPE))
            return None
        except NotFoundError:
            self.learnt.learn(CATEGORIES, "refused", "HTTP 404 on expenses/categories")
            return None
        self._note(CATEGORIES, "allowed", "the expense categories were listed")
        return [parse_expense_category(row) for row in rows]

    def list_taxes(self) -> list[Tax] | None:
        """Every tax FreshBooks lists, or None when this login may not read them (learnt)."""
        if self.learnt.stands(TAXES, "refused"):
            return None
        what = f"the taxes of account {self._account_id}"
        try:
            rows = [row for page in self._pages(self._account_path("taxes"), "taxes", what, {})
                    for row in page]  # fmt: skip
        except AuthRequiredError as error:  # a 403: the scope is missing
            self.learnt.learn(TAXES, "refused", _short(error, TAXES_SCOPE))
            return None
        except NotFoundError:
            self.learnt.learn(TAXES, "refused", "HTTP 404 on taxes/taxes")
            return None
        self._note(TAXES, "allowed", "the taxes were listed")
        return [parse_tax(row) for row in rows]


def parse_tax(data: object) -> Tax:
    """A row of `taxes/taxes`: `taxid` (or `id`), `name`, `amount` (the rate in percent, as
    text), `number` (the registration number), `compound`, `vis_state`, `updated`."""
    r = _Reader(data, "tax", id_key="taxid")
    return Tax(
        fb_id=r.integer("taxid") if r.get("taxid") is not None else r.integer("id"),
        name=r.text("name"),
        percent=r.number("amount"),
        number=r.text("number"),
        compound=r.flag("compound"),
        vis_state=r.vis_state(),
        updated_at=r.timestamp("updated") or r.timestamp("updated_at"),
    )


def lacking_scopes_note(granted: str, hours: int) -> str:
    """What `doctor` adds when a grant (its scopes, "" when unknown) lacks a coding list's."""
    scopes = granted.split() or list(CODING_SCOPES)
    lacking = ", ".join(scope for scope in CODING_SCOPES if scope not in scopes)
    if not lacking or hours == 0:
        return ""
    return f"; no coding list without {lacking}: grant it, then `fbstampli auth login`"


def _short(error: AuthRequiredError, scope: str) -> str:
    text = str(error)
    return f"HTTP 403: needs {scope}" if scope in text else text[:200]
