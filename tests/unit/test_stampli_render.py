"""Rendering rows, files and names from the template: exact values, guarded text, stable hashes."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from importlib import resources

import pytest

from fbstampli.errors import TemplateError
from fbstampli.models import Bill, BillLine, BillPayment, Kind, Vendor, VisState
from fbstampli.stampli.render import (
    RenderError,
    content_hash,
    file_name,
    format_decimal,
    neutralise_formula,
    render_file,
    render_rows,
)
from fbstampli.stampli.template import Template, load_template, parse_template

TEMPLATE = load_template(None)
DEFAULT_TEXT = (
    resources.files("fbstampli.stampli").joinpath("templates", "default.toml").read_text("utf-8")
)
CREATED = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
GUARDED = parse_template(DEFAULT_TEXT.replace("formula_guard = false", "formula_guard = true"))


def make_bill(**changes: object) -> Bill:
    values: dict[str, object] = {
        "fb_id": 42,
        "vendor_id": 7,
        "bill_number": "INV-1",
        "issue_date": date(2026, 11, 1),
        "due_date": date(2026, 12, 1),
        "currency_code": "USD",
        "amount": Decimal("100.00"),
        "tax_amount": Decimal("13.00"),
        "total_amount": Decimal("113.00"),
        "outstanding": Decimal("113.00"),
        "paid": Decimal("0"),
        "status": "unpaid",
        "lines": (
            BillLine(1, "Paper", Decimal("2"), Decimal("25.00"), Decimal("50.00"), "Supplies"),
            BillLine(2, "Ink", Decimal("1"), Decimal("50.00"), Decimal("50.00"), "Supplies"),
        ),
    }
    values.update(changes)
    return Bill(**values)  # type: ignore[arg-type]


def cell(template: Template, kind: Kind, row: tuple[str, ...], header: str) -> str:
    return row[template.layout(kind).headers.index(header)]


def test_bill_gives_one_row_per_line_with_header_fields_repeated() -> None:
    rows = render_rows(TEMPLATE, make_bill(), vendor_names={7: "Acme"})
    assert len(rows) == 2
    for row, line_number in zip(rows, ("1", "2"), strict=True):
        assert cell(TEMPLATE, Kind.BILL, row, "FreshBooks Bill ID") == "42"
        assert cell(TEMPLATE, Kind.BILL, row, "Vendor Name") == "Acme"
        assert cell(TEMPLATE, Kind.BILL, row, "Invoice Total") == "113.00"
        assert cell(TEMPLATE, Kind.BILL, row, "Invoice Date") == "2026-11-01"
        assert cell(TEMPLATE, Kind.BILL, row, "Line Number") == line_number
    assert cell(TEMPLATE, Kind.BILL, rows[1], "Line Description") == "Ink"


def test_default_bill_row_carries_terms_payment_state_category_id_and_tax_rates() -> None:
    line = BillLine(
        1, "Toner", Decimal("2"), Decimal("50.00"), Decimal("100.00"), "Office", 11, "HST",
        Decimal("13"), Decimal("13.00"), "PST", Decimal("7.5"), Decimal("7.50"),
    )  # fmt: skip
    bill = make_bill(
        due_offset_days=30,
        status="partial",
        outstanding=Decimal("63.00"),
        paid=Decimal("50.00"),
        lines=(line,),
    )
    (row,) = render_rows(TEMPLATE, bill, vendor_names={7: "Acme"})
    expected = {
        "Terms (Days)": "30",
        "Document Type": "invoice",
        "Payment Status": "partial",
        "Amount Paid": "50.00",
        "Amount Outstanding": "63.00",
        "GL Account ID": "11",
        "Tax Percent 1": "13",
        "Tax Percent 2": "7.5",
    }
    assert {header: cell(TEMPLATE, Kind.BILL, row, header) for header in expected} == expected


@pytest.mark.parametrize(
    ("total", "document"),
    [(Decimal("-113.00"), "credit"), (Decimal("-0.01"), "credit"), (Decimal("0"), "invoice")],
)
def test_document_type_follows_the_sign_of_the_total(total: Decimal, document: str) -> None:
    (row, _) = render_rows(TEMPLATE, make_bill(total_amount=total), vendor_names={7: "Acme"})
    assert cell(TEMPLATE, Kind.BILL, row, "Document Type") == document


def test_bill_without_terms_or_category_id_leaves_those_cells_empty() -> None:
    (row, _) = render_rows(TEMPLATE, make_bill(), vendor_names={7: "Acme"})
    assert cell(TEMPLATE, Kind.BILL, row, "Terms (Days)") == ""
    assert cell(TEMPLATE, Kind.BILL, row, "GL Account ID") == ""


def test_bill_without_lines_gives_one_row_with_empty_line_cells() -> None:
    (row,) = render_rows(TEMPLATE, make_bill(lines=()), vendor_names={7: "Acme"})
    assert cell(TEMPLATE, Kind.BILL, row, "Line Number") == ""
    assert cell(TEMPLATE, Kind.BILL, row, "Line Amount") == ""
    assert cell(TEMPLATE, Kind.BILL, row, "Invoice Total") == "113.00"


def test_bill_whose_vendor_name_is_unknown_fails_as_a_render_error() -> None:
    with pytest.raises(RenderError, match="bill 42 names vendor 7"):
        render_rows(TEMPLATE, make_bill(), vendor_names={})


def test_payment_looks_up_its_bill_and_vendor() -> None:
    payment = BillPayment(9, 42, Decimal("-5.10"), "USD", date(2026, 11, 20), "Check")
    (row,) = render_rows(TEMPLATE, payment, vendor_names={7: "Acme"}, bills={42: make_bill()})
    assert cell(TEMPLATE, Kind.PAYMENT, row, "Invoice Number") == "INV-1"
    assert cell(TEMPLATE, Kind.PAYMENT, row, "Vendor Name") == "Acme"
    assert cell(TEMPLATE, Kind.PAYMENT, row, "FreshBooks Vendor ID") == "7"
    assert cell(TEMPLATE, Kind.PAYMENT, row, "Amount") == "-5.10"
    with pytest.raises(RenderError, match="bill payment 9 is for bill 42"):
        render_rows(TEMPLATE, payment, vendor_names={7: "Acme"}, bills={})


def test_vendor_row_formats_bool_state_and_keeps_a_plain_phone() -> None:
    vendor = Vendor(7, "Acme", phone="+1 (555) 010-0100", is_1099=True, vis_state=VisState.DELETED)
    (row,) = render_rows(TEMPLATE, vendor)
    assert cell(TEMPLATE, Kind.VENDOR, row, "1099 Vendor") == "yes"
    assert cell(TEMPLATE, Kind.VENDOR, row, "Status") == "deleted"
    assert cell(TEMPLATE, Kind.VENDOR, row, "Phone") == "+1 (555) 010-0100"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Acme = good", "Acme = good"),
        ("'quoted", "'quoted"),
        ("", ""),
    ],
)
def test_text_columns_are_neutralised_against_formula_injection(text: str, expected: str) -> None:
    assert neutralise_formula(text) == expected
    (row,) = render_rows(GUARDED, Vendor(7, text, note=text))
    assert cell(GUARDED, Kind.VENDOR, row, "Vendor Name") == expected
    assert cell(GUARDED, Kind.VENDOR, row, "Note") == expected


def test_phone_with_a_formula_is_neutralised() -> None:
    (row,) = render_rows(GUARDED, Vendor(7, "A", phone="+1=cmd()"))
    assert cell(GUARDED, Kind.VENDOR, row, "Phone") == "'+1=cmd()"


XML_TEMPLATE = """
[template]
name = "xml"
[format]
format = "xml"
[vendor]
columns = [{ header = "VendorName", source = "name" }]
[bill]
columns = [
    { header = "InvoiceNumber", source = "bill_number" },
    { header = "VendorName", source = "vendor_name" },
]
[payment]
columns = [{ header = "Id", source = "fb_id" }]
"""


@pytest.mark.parametrize("template", [TEMPLATE, parse_template(XML_TEMPLATE)])
def test_default_file_sends_text_to_stampli_exactly_as_freshbooks_holds_it(
    template: Template,
) -> None:
    bill = make_bill(bill_number="-0042")
    (row, _) = render_rows(template, bill, vendor_names={7: "-Minus Logistics"})
    assert "-0042" in row
    assert "-Minus Logistics" in row
    (vendor_row,) = render_rows(template, Vendor(8, "@Home Office Supplies"))
    assert "@Home Office Supplies" in vendor_row
    data = render_file(template, Kind.BILL, [row]).decode()
    assert "-Minus Logistics" in data
    assert "'" not in data


def test_a_template_with_a_formula_guard_that_is_not_a_flag_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"format\.formula_guard: must be true or false"):
        parse_template(DEFAULT_TEXT.replace("formula_guard = false", 'formula_guard = "yes"'))


def test_amounts_dates_and_ids_are_never_altered_by_the_guard() -> None:
    bill = make_bill(
        bill_number="-17",
        amount=Decimal("-100.00"),
        total_amount=Decimal("-113.00"),
        lines=(BillLine(1, "-x", Decimal("-1"), Decimal("-2.5"), Decimal("-2.50")),),
    )
    (row,) = render_rows(GUARDED, bill, vendor_names={7: "-Acme"})
    assert cell(GUARDED, Kind.BILL, row, "Invoice Number") == "'-17"
    assert cell(GUARDED, Kind.BILL, row, "Vendor Name") == "'-Acme"
    assert cell(GUARDED, Kind.BILL, row, "Line Description") == "'-x"
    assert cell(GUARDED, Kind.BILL, row, "Subtotal") == "-100.00"
    assert cell(GUARDED, Kind.BILL, row, "Invoice Total") == "-113.00"
    assert cell(GUARDED, Kind.BILL, row, "Line Quantity") == "-1"
    assert cell(GUARDED, Kind.BILL, row, "Line Unit Price") == "-2.5"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1234567.89"), "1234567.89"),
        (Decimal("1E+3"), "1000"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("-0.10"), "-0.10"),
        (Decimal("10.500"), "10.500"),
    ],
)
def test_amounts_are_plain_decimals_without_exponent_or_separator(
    value: Decimal, text: str
) -> None:
    assert format_decimal(value) == text


def test_decimal_comma_template_writes_a_comma() -> None:
    template = parse_template(
        DEFAULT_TEXT.replace('delimiter = ","', 'delimiter = ";"').replace(
            'decimal_separator = "."', 'decimal_separator = ","'
        )
    )
    rows = render_rows(template, make_bill(), vendor_names={7: "A"})
    assert cell(template, Kind.BILL, rows[0], "Invoice Total") == "113,00"
    columns = len(template.layout(Kind.BILL).columns)
    assert render_file(template, Kind.BILL, rows).split(b"\r\n")[1].count(b";") == columns - 1


def test_custom_date_and_datetime_formats_and_utc_conversion() -> None:
    text = DEFAULT_TEXT.replace('date_format = "iso"', 'date_format = "%m/%d/%Y"').replace(
        '{ header = "Version", source = "version" },\n]\n\n[bill]',
        '{ header = "Version", source = "version" },\n'
        '    { header = "Updated", source = "updated_at" },\n'
        '    { header = "Updated Day", source = "updated_at", format = "%d.%m.%Y %H:%M" },\n'
        "]\n\n[bill]",
    )
    template = parse_template(text)
    plus_two = timezone(timedelta(hours=2))
    vendor = Vendor(7, "A", updated_at=datetime(2026, 11, 25, 1, 30, tzinfo=plus_two))
    (row,) = render_rows(template, vendor)
    assert cell(template, Kind.VENDOR, row, "Updated") == "2026-11-24T23:30:00Z"
    assert cell(template, Kind.VENDOR, row, "Updated Day") == "24.11.2026 23:30"
    (bill_row, _) = render_rows(template, make_bill(), vendor_names={7: "A"})
    assert cell(template, Kind.BILL, bill_row, "Invoice Date") == "11/01/2026"


def test_constant_column_writes_its_value() -> None:
    text = DEFAULT_TEXT.replace(
        '{ header = "Version", source = "version" },\n]\n\n[bill]',
        '{ header = "Version", source = "version" },\n    { header = "Company", value = "ACME" },\n'
        "]\n\n[bill]",
    )
    template = parse_template(text)
    (row,) = render_rows(template, Vendor(7, "A"))
    assert row[-1] == "ACME"


def test_csv_file_has_header_crlf_no_bom_and_quotes_what_needs_quoting() -> None:
    vendor = Vendor(7, 'Acme, "the" Co\nLtd', note="Zoë – 東京")
    rows = render_rows(TEMPLATE, vendor)
    data = render_file(TEMPLATE, Kind.VENDOR, rows)
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data.startswith(b"FreshBooks Vendor ID,Vendor Name,")
    assert data.endswith(b"\r\n")
    assert b'"Acme, ""the"" Co\nLtd"' in data
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert parsed[0] == list(TEMPLATE.vendor.headers)
    assert tuple(parsed[1]) == rows[0]


def test_quote_all_quotes_every_field() -> None:
    template = parse_template(DEFAULT_TEXT.replace("quote_all = false", "quote_all = true"))
    data = render_file(template, Kind.VENDOR, render_rows(template, Vendor(7, "A")))
    assert data.split(b"\r\n")[1].startswith(b'"7","A","active"')


def test_file_in_a_narrow_encoding_refuses_what_it_cannot_carry() -> None:
    template = parse_template(DEFAULT_TEXT.replace('encoding = "utf-8"', 'encoding = "latin-1"'))
    assert (
        render_file(template, Kind.VENDOR, render_rows(template, Vendor(7, "Zoë"))).count(b"Zo\xeb")
        == 1
    )
    with pytest.raises(RenderError, match="cannot be written in latin-1"):
        render_file(template, Kind.VENDOR, render_rows(template, Vendor(7, "東京")))


def test_row_of_another_width_is_refused() -> None:
    with pytest.raises(RenderError, match="re-render"):
        render_file(TEMPLATE, Kind.VENDOR, [("7", "A")])


def test_content_hash_is_a_fixed_value_for_fixed_rows() -> None:
    rows = [("42", "Acme, Inc", "113.00"), ("42", "Zoë\r\n", "-1")]
    assert content_hash(rows) == content_hash([list(row) for row in rows])
    canonical = b"R3:2:429:Acme, Inc6:113.00R3:2:426:Zo\xc3\xab\r\n2:-1"
    assert content_hash(rows) == hashlib.sha256(canonical).hexdigest()
    # Pinned: a change here re-sends every record ever delivered.
    assert content_hash(rows) == (
        "df420c502094b95af469d35fe9a5a37815f922817ae47cd28fed7a12249b45b9"
    )


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ([("ab", "c")], [("a", "bc")]),
        ([("a",), ("b",)], [("a", "b")]),
        ([("a", "b")], [("b", "a")]),
        ([("1.0",)], [("1.00",)]),
        ([], [()]),
    ],
)
def test_content_hash_tells_different_rows_apart(
    left: list[tuple[str, ...]], right: list[tuple[str, ...]]
) -> None:
    assert content_hash(left) != content_hash(right)


def test_file_names_follow_the_pattern_and_sort_in_dependency_order() -> None:
    names = [
        file_name(TEMPLATE, business="acme", created_at=CREATED, batch_id=42, kind=kind)
        for kind in (Kind.PAYMENT, Kind.VENDOR, Kind.BILL)
    ]
    assert sorted(names) == [
        "fbstampli_acme_20261125T101500Z_b000042_1-vendors.csv",
        "fbstampli_acme_20261125T101500Z_b000042_2-bills.csv",
        "fbstampli_acme_20261125T101500Z_b000042_3-payments.csv",
    ]


def test_file_name_uses_utc_and_a_safe_business_name() -> None:
    local = CREATED.astimezone(timezone(timedelta(hours=-5)))
    name = file_name(
        TEMPLATE, business="../Acme Inc./", created_at=local, batch_id=7, kind=Kind.BILL
    )
    assert name == "fbstampli_Acme-Inc_20261125T101500Z_b000007_2-bills.csv"
    with pytest.raises(ValueError, match="aware"):
        file_name(
            TEMPLATE,
            business="a",
            created_at=CREATED.replace(tzinfo=None),
            batch_id=1,
            kind=Kind.BILL,
        )


def test_file_name_never_looks_like_a_temporary_name() -> None:
    template = parse_template(
        DEFAULT_TEXT.replace('file_name = "fbstampli_{business}_', 'file_name = "{business}_')
    )
    name = file_name(template, business="...", created_at=CREATED, batch_id=1, kind=Kind.VENDOR)
    assert not name.startswith(".")
    assert not name.endswith(".part")
