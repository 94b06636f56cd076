"""The coding list's pure parts and its engine against fakes (issue 26, item 2): parsing
FreshBooks' expense categories, the template's `[category]`, when the list is read, and a
category FreshBooks no longer lists going out as VOID."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from fbstampli.config import Settings, SyncSettings
from fbstampli.freshbooks.client.coding import parse_tax
from fbstampli.freshbooks.parse import parse_expense_category
from fbstampli.models import ExpenseCategory, Kind, VisState
from fbstampli.report import RunReport
from fbstampli.stampli.render import TemplateRenderer
from fbstampli.stampli.template import load_template, parse_template
from fbstampli.store import Store
from fbstampli.store.outbox import pending_deliveries
from fbstampli.sync.coding import categories_due, refresh_coding_lists
from tests.support.fakes import FakeClock, ListSource
from tests.unit.test_stampli_template import DEFAULT_TEXT

SETTINGS = Settings()
XML_TEMPLATE = """
[format]
format = "xml"
[vendor]
columns = [{ header = "Id", source = "fb_id" }]
[bill]
columns = [{ header = "Id", source = "fb_id" }]
[payment]
columns = [{ header = "Id", source = "fb_id" }]
"""


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"categoryid": 7, "id": 7, "category": "Rent", "parentid": 0, "vis_state": 0},
            ExpenseCategory(7, "Rent"),
        ),
        (
            {"id": "8", "category": "Airfare", "parentid": "2", "is_cogs": 1, "vis_state": 2},
            ExpenseCategory(8, "Airfare", 2, "", True, VisState.ARCHIVED),
        ),
    ],
)
def test_an_expense_category_row_parses_with_its_parent_and_state(
    row: dict[str, object], expected: ExpenseCategory
) -> None:
    assert parse_expense_category(row) == expected


def test_a_tax_row_parses_with_its_rate_number_and_compounding() -> None:
    row = {"taxid": 5, "name": "QST", "amount": "9.975", "number": "1234", "compound": True,
           "vis_state": 0, "updated": "2026-11-25 10:00:00"}  # fmt: skip
    tax = parse_tax(row)
    assert (tax.fb_id, tax.name, tax.percent, tax.number, tax.compound) == (
        5,
        "QST",
        Decimal("9.975"),
        "1234",
        True,
    )
    assert tax.updated_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_a_template_without_a_category_table_sends_the_default_columns() -> None:
    start = DEFAULT_TEXT.index("[category]")
    text = DEFAULT_TEXT[:start] + DEFAULT_TEXT[DEFAULT_TEXT.index("[vendor]") :]
    assert parse_template(text).layout(Kind.CATEGORY) == load_template(None).layout(Kind.CATEGORY)
    xml = parse_template(XML_TEMPLATE)
    headers = xml.layout(Kind.CATEGORY).headers
    assert headers[:3] == ("GL_Account_ID", "GL_Account_Code", "GL_Account_Name")
    assert xml.layout(Kind.TAX).headers[:2] == ("Tax_ID", "Tax_Code")


def test_the_list_is_due_once_per_interval_on_a_sweep_or_for_an_unknown_id(
    store: Store, clock: FakeClock
) -> None:
    source = ListSource(categories=[ExpenseCategory(1, "Rent")])
    renderer = TemplateRenderer.load(None)
    assert categories_due(store, SETTINGS, clock, full=False)
    refresh_coding_lists(
        store, source, renderer, settings=SETTINGS, clock=clock, full=False, run_id=None,
        report=RunReport("push-bills"),
    )  # fmt: skip
    assert not categories_due(store, SETTINGS, clock, full=False, named=[1])
    assert categories_due(store, SETTINGS, clock, full=False, named=[2])
    assert categories_due(store, SETTINGS, clock, full=True)
    clock.advance(hours=24)
    assert categories_due(store, SETTINGS, clock, full=False)
    never = dataclasses.replace(SETTINGS, sync=SyncSettings(coding_lists_hours=0))
    assert not categories_due(store, never, clock, full=True, named=[2])


def test_a_category_no_longer_listed_goes_out_as_void_once(store: Store, clock: FakeClock) -> None:
    renderer = TemplateRenderer.load(None)
    source = ListSource(categories=[ExpenseCategory(1, "Rent"), ExpenseCategory(2, "Travel")])

    def refresh() -> list[tuple[int, str]]:
        before = {int(row["id"]) for row in pending_deliveries(store, Kind.CATEGORY)}
        refresh_coding_lists(
            store, source, renderer, settings=SETTINGS, clock=clock, full=True, run_id=None,
            report=RunReport("push-bills"),
        )  # fmt: skip
        rows = pending_deliveries(store, Kind.CATEGORY)
        return [(int(r["fb_id"]), str(r["rows"])) for r in rows if int(r["id"]) not in before]

    assert [fb_id for fb_id, _ in refresh()] == [1, 2]
    source.categories = [ExpenseCategory(1, "Rent")]
    ((fb_id, rows),) = refresh()
    assert fb_id == 2
    assert "VOID" in rows
    assert refresh() == []
    source.categories = None  # the scope withdrawn: nothing read, nothing queued
    assert refresh() == []
