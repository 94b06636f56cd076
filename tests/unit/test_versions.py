"""What makes a version (`stampli/versions.py`): own data only, stamped when queued."""

from __future__ import annotations

import pytest

from fbstampli.errors import TemplateError
from fbstampli.models import Kind, Vendor
from fbstampli.stampli.files import content_hash
from fbstampli.stampli.render import render_rows
from fbstampli.stampli.template import load_template, parse_template
from fbstampli.stampli.versions import legacy_hash, stamp_rows, version_hash
from tests.unit.test_stampli_render import DEFAULT_TEXT, make_bill


def test_a_bill_keeps_its_version_when_only_its_vendor_is_renamed() -> None:
    template = load_template(None)
    before = render_rows(template, make_bill(), vendor_names={7: "Old Name"})
    after = render_rows(template, make_bill(), vendor_names={7: "New Name"})
    assert before != after
    assert version_hash(template, Kind.BILL, before) == version_hash(template, Kind.BILL, after)


def test_resend_on_rename_counts_the_vendor_name_in_the_version() -> None:
    template = parse_template(
        DEFAULT_TEXT.replace("resend_on_rename = false", "resend_on_rename = true")
    )
    before = render_rows(template, make_bill(), vendor_names={7: "Old Name"})
    after = render_rows(template, make_bill(), vendor_names={7: "New Name"})
    assert version_hash(template, Kind.BILL, before) != version_hash(template, Kind.BILL, after)


def test_a_bill_change_of_its_own_changes_its_version() -> None:
    template = load_template(None)
    before = render_rows(template, make_bill(), vendor_names={7: "A"})
    after = render_rows(template, make_bill(bill_number="B-2"), vendor_names={7: "A"})
    assert version_hash(template, Kind.BILL, before) != version_hash(template, Kind.BILL, after)


def test_legacy_hash_is_the_hash_of_the_rows_without_action_and_version_columns() -> None:
    template = load_template(None)
    old_text = DEFAULT_TEXT.replace('    { header = "Action", source = "action" },\n', "")
    old = parse_template(old_text.replace('    { header = "Version", source = "version" },\n', ""))
    vendor = Vendor(7, "A")
    stored = content_hash(render_rows(old, vendor))  # what an earlier release kept
    assert legacy_hash(template, Kind.VENDOR, render_rows(template, vendor)) == stored


def test_stamping_fills_the_action_and_version_cells_with_the_templates_words() -> None:
    template = parse_template(DEFAULT_TEXT.replace('void = "VOID"', 'void = "CANCEL"'))
    rows = render_rows(template, make_bill(), vendor_names={7: "A"})
    headers = template.layout(Kind.BILL).headers
    stamped = stamp_rows(template, Kind.BILL, rows, action="void", version=3)
    assert {(row[headers.index("Action")], row[headers.index("Version")]) for row in stamped} == {
        ("CANCEL", "3")
    }
    assert version_hash(template, Kind.BILL, stamped) == version_hash(template, Kind.BILL, rows)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('void = "VOID"', 'void = ""', "actions: a word must not be empty"),
        ('void = "VOID"', 'void = "=HYPERLINK()"', "nor start with"),
        ('void = "VOID"', 'vid = "VOID"', "actions.vid: unknown key"),
        ("resend_on_rename = false", 'resend_on_rename = "yes"', "must be true or false"),
    ],
)
def test_bad_actions_or_rename_option_are_named(old: str, new: str, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(DEFAULT_TEXT.replace(old, new))
    assert message in str(caught.value)
