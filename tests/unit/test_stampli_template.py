"""The template file: the packaged example loads, and every bad field is named by its path."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from fbstampli.errors import TemplateError
from fbstampli.models import ExportKind, Kind
from fbstampli.stampli.template import (
    FieldType,
    load_template,
    parse_template,
)

DEFAULT_TEXT = (
    resources.files("fbstampli.stampli").joinpath("templates", "default.toml").read_text("utf-8")
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stampli-template.toml"


def test_packaged_default_loads_and_says_it_is_an_example() -> None:
    template = load_template(None)
    assert "example" in template.name
    assert DEFAULT_TEXT.startswith("# EXAMPLE")
    assert template.bill.headers[0] == "FreshBooks Bill ID"
    assert {layout.kind for layout in template.exports} == set(ExportKind)
    assert template.vendor.file.line_ending == "\r\n"
    assert template.vendor.file.encoding == "utf-8"


def test_every_outgoing_file_carries_the_freshbooks_id_in_its_own_column() -> None:
    template = load_template(None)
    assert template.vendor.columns[0].source == "fb_id"
    assert template.bill.columns[0].source == "fb_id"
    assert template.payment.columns[0].source == "fb_id"
    assert template.payment.columns[1].source == "bill_id"


def test_commented_example_in_examples_folder_is_the_default_template() -> None:
    example = load_template(EXAMPLE)
    default = load_template(None)
    assert (example.vendor, example.bill, example.payment, example.exports) == (
        default.vendor,
        default.bill,
        default.payment,
        default.exports,
    )
    assert example.file_name == default.file_name


def test_column_types_come_from_the_source_field() -> None:
    template = load_template(None)
    types = {column.source: column.type for column in template.bill.columns}
    assert types["total_amount"] is FieldType.AMOUNT
    assert types["issue_date"] is FieldType.DATE
    assert types["fb_id"] is FieldType.ID
    assert types["description"] is FieldType.TEXT


def test_section_format_overrides_only_the_keys_it_names() -> None:
    text = DEFAULT_TEXT.replace(
        "[payment]\n", '[bill.format]\ndelimiter = ";"\ndecimal_separator = ","\n\n[payment]\n'
    )
    template = parse_template(text)
    assert template.bill.file.delimiter == ";"
    assert template.bill.file.decimal_separator == ","
    assert template.bill.file.line_ending == "\r\n"
    assert template.vendor.file.delimiter == ","


def test_load_template_reads_a_custom_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(DEFAULT_TEXT.replace('name = "example-default"', 'name = "acme"'), "utf-8")
    template = load_template(path)
    assert template.name == "acme"
    assert template.origin == str(path)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ header = "Invoice Number", source = "bill_number" }',
            '{ header = "Invoice Number", source = "vendr_name" }',
            "bill column 4 ('Invoice Number') source: unknown field 'vendr_name'; "
            "did you mean 'vendor_name'?",
        ),
        (
            '{ header = "Approver", field = "approver" }',
            '{ header = "Approver", field = "aprover" }',
            "exports.approval column 4 ('Approver') field: unknown field 'aprover'; "
            "did you mean 'approver'?",
        ),
        ('format = "csv"', 'format = "json"', "format.format: must be 'csv' or 'xml'"),
        ('delimiter = ","', 'delimiter = ";;"', "format.delimiter: must be one character"),
        ('encoding = "utf-8"', 'encoding = "utf-99"', "format.encoding: unknown encoding"),
        (
            'line_ending = "crlf"',
            'line_ending = "cr"',
            "format.line_ending: must be 'crlf' or 'lf'",
        ),
        ('date_format = "iso"', 'date_format = "dd/mm"', "format.date_format: must be 'iso'"),
        ("_{batch}_", "_", "template.file_name: must contain {batch}"),
        (
            'file_name = "fbstampli_',
            'file_name = ".fbstampli_',
            "template.file_name: must not start",
        ),
        ("{kinds}.csv", "{knds}.csv", "template.file_name: unknown placeholder(s) ['knds']"),
        (
            '{ header = "Vendor Name", source = "name" }',
            '{ header = " freshbooks VENDOR id", source = "name" }',
            "vendor column 2 header: duplicate header",
        ),
        (
            '{ header = "1099 Vendor", source = "is_1099", format = "yes|no" }',
            '{ header = "1099 Vendor", source = "is_1099", format = "yes" }',
            "vendor column 17 ('1099 Vendor') format: must be 'true-text|false-text'",
        ),
        (
            '{ header = "Invoice Total", source = "total_amount" }',
            '{ header = "Invoice Total", source = "total_amount", format = "0.00" }',
            "bill column 11 ('Invoice Total') format: a amount column takes no format",
        ),
        (
            '{ header = "Version", source = "version" },\n]\n\n[bill]',
            '{ header = "Version", sourc = "version" },\n]\n\n[bill]',
            "vendor column 20 ('Version') sourc: unknown key; did you mean 'source'?",
        ),
        ("[exports.capture]", "[exports.captures]", "exports.captures: unknown export"),
        ('match = ["*capture*.csv"]', "match = []", "exports.capture.match: must be"),
        (
            '{ header = "Stampli Invoice ID", field = "stampli_invoice_id", required = true },\n'
            '    { header = "FreshBooks Bill ID", field = "fb_bill_id" },\n'
            '    { header = "Status", field = "status" },',
            '{ header = "Status", field = "status" },',
            "exports.capture.columns: no column maps field 'stampli_invoice_id'",
        ),
    ],
)
def test_bad_template_names_the_field_by_dotted_path(old: str, new: str, message: str) -> None:
    assert old in DEFAULT_TEXT
    with pytest.raises(TemplateError) as caught:
        parse_template(DEFAULT_TEXT.replace(old, new, 1), origin="mine.toml")
    assert message in str(caught.value)
    assert "mine.toml" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = DEFAULT_TEXT.replace('source = "bill_number"', 'source = "nope"').replace(
        'delimiter = ","', 'delimiter = ""'
    )
    with pytest.raises(TemplateError) as caught:
        parse_template(text)
    assert "bill column 4 ('Invoice Number') source" in str(caught.value)
    assert "format.delimiter" in str(caught.value)


def test_xml_format_requires_headers_that_are_element_names() -> None:
    text = DEFAULT_TEXT.replace('format = "csv"', 'format = "xml"')
    with pytest.raises(TemplateError, match=r"vendor column 1 header: 'FreshBooks Vendor ID'"):
        parse_template(text)


def test_missing_outgoing_section_is_named() -> None:
    start = DEFAULT_TEXT.index("[payment]\n")
    end = DEFAULT_TEXT.index("# Exports Stampli")
    with pytest.raises(TemplateError, match=r"payment: missing table \[payment\]"):
        parse_template(DEFAULT_TEXT[:start] + DEFAULT_TEXT[end:])


def test_toml_syntax_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="not valid TOML"):
        parse_template("[vendor\ncolumns = 3")


def test_missing_template_file_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"does not exist; fix stampli.template"):
        load_template(tmp_path / "absent.toml")


def test_layout_is_found_by_kind() -> None:
    template = load_template(None)
    assert template.layout(Kind.PAYMENT) is template.payment
    assert template.export_layout(ExportKind.CAPTURE) is template.exports[0]


def test_the_example_is_the_packaged_template_line_for_line_with_comments_added() -> None:
    """The packaged default is the source; the example may only add comments to it (issue 23:
    the two had drifted apart)."""

    def data(text: str) -> list[str]:
        lines = (re.sub(r"\s{2,}#.*$", "", line).rstrip() for line in text.splitlines())
        return [line for line in lines if line and not line.lstrip().startswith("#")]

    assert data(EXAMPLE.read_text(encoding="utf-8")) == data(DEFAULT_TEXT)


def test_every_column_of_the_default_template_is_documented() -> None:
    """examples/STAMPLI-TEMPLATE.md has a row `| header | `source` | meaning |` for each."""
    document = (EXAMPLE.parent / "STAMPLI-TEMPLATE.md").read_text(encoding="utf-8")
    template = load_template(None)
    missing = [
        f"{kind.value}: {column.header}"
        for kind in Kind
        for column in template.layout(kind).columns
        if f"| {column.header} | `{column.source}` |" not in document
    ]
    assert missing == []
