"""The coding lists: FreshBooks' expense categories, what a bill line is coded to.

The path is the one FreshBooks' own Python SDK uses (`expenses_categories`:
`/accounting/account/<id>/expenses/categories`, list key `categories`, read-only). It
needs the scope `user:expenses:read`, which a login granted before this release lacks:
a refusal (403) is learnt as the fact `CATEGORIES` and believed for a day, and the run
goes on without the list; it never stops the bills.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fbstampli.errors import AuthRequiredError
from fbstampli.freshbooks.client.errors import NotFoundError
from fbstampli.freshbooks.client.session import Session
from fbstampli.freshbooks.parse import parse_expense_category
from fbstampli.models import ExpenseCategory
from fbstampli.models.behaviour import CATEGORIES

log = logging.getLogger(__name__)

CATEGORIES_SCOPE = "user:expenses:read"


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
            self.learnt.learn(CATEGORIES, "refused", _short(error))
            return None
        except NotFoundError:
            self.learnt.learn(CATEGORIES, "refused", "HTTP 404 on expenses/categories")
            return None
        self._note(CATEGORIES, "allowed", "the expense categories were listed")
        return [parse_expense_category(row) for row in rows]


def _short(error: AuthRequiredError) -> str:
    text = str(error)
    return f"HTTP 403: needs {CATEGORIES_SCOPE}" if CATEGORIES_SCOPE in text else text[:200]
