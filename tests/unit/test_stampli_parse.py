"""Reading Stampli exports: round trips, tolerance, named errors, bounded memory, no XML bombs."""

from __future__ import annotations

import io
import tracemalloc
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fbstampli.errors import ExportParseError
from fbstampli.models import Bill, BillPayment, ExportKind, Kind, StampliRecord
from fbstampli.stampli.parse import detect_export_kind, normalise_status, parse_export
from fbstampli.stampli.render import (
    RenderError,
    format_decimal,
    render_file,
    render_rows,
)
from fbstampli.stampli.template import Template, load_template, parse_template

TEMPLATE = load_template(None)
APPROVAL = "stampli_approval_20261125.csv"
APPROVAL_HEADER = "Stampli Invoice ID,FreshBooks Bill ID,Approval Status,Approver,Approved At"


def parse_bytes(
    data: bytes, name: str = APPROVAL, template: Template = TEMPLATE
) -> list[StampliRecord]:
    return list(parse_export(template, name, io.BytesIO(data)))


def round_trip_template(file_format: str) -> Template:
    """An outgoing payment layout and an export layout with the same headers, for round trips."""
    headers = [
        ("StampliInvoiceID", "note", "stampli_invoice_id"),
        ("FreshBooksBillID", "bill_id", "fb_bill_id"),
        ("Amount", "amount", "amount"),
        ("PaymentDate", "paid_date", "payment_date"),
        ("PaymentMethod", "payment_type", "payment_method"),
        ("VendorName", "vendor_name", "vendor_name"),
        ("Currency", "currency_code", "currency_code"),
    ]
    outgoing = ",\n".join(f'{{ header = "{h}", source = "{s}" }}' for h, s, _ in headers)
    incoming = ",\n".join(f'{{ header = "{h}", field = "{f}" }}' for h, _, f in headers)
    return parse_template(
        f"""
[template]
name = "round-trip"
[format]
format = "{file_format}"
[vendor]
columns = [{{ header = "Id", source = "fb_id" }}]
[bill]
columns = [{{ header = "Id", source = "fb_id" }}]
[payment]
columns = [{outgoing}]
[exports.payment]
match = "*.data"
columns = [{incoming}]
"""
    )


def xml_safe(text: str) -> bool:
    return not any((ord(ch) < 0x20 and ch not in "\t\n\r") or ch in "\ufffe\uffff" for ch in text)


texts = st.text(min_size=0, max_size=30)
payments = st.builds(
    BillPayment,
    fb_id=st.integers(1, 10**9),
    bill_id=st.integers(0, 10**12),
    amount=st.decimals(
        min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=4, allow_nan=False
    ),
    currency_code=texts,
    paid_date=st.dates(),
    payment_type=texts,
    note=texts.filter(lambda text: text.strip() != ""),
)


def assert_round_trip(payment: BillPayment, vendor: str, record: StampliRecord) -> None:
    assert record.stampli_invoice_id == payment.note
    assert record.fb_bill_id == payment.bill_id
    assert record.amount == payment.amount
    assert record.amount is not None
    assert format_decimal(record.amount) == format_decimal(payment.amount)
    assert record.payment_date == payment.paid_date
    assert record.payment_method == payment.payment_type
    assert record.vendor_name == vendor
    assert record.currency_code == payment.currency_code
    assert record.extra == {}


@pytest.mark.parametrize("file_format", ["csv", "xml"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_rendered_rows_parse_back_to_the_same_values(file_format: str, data: st.DataObject) -> None:
    template = round_trip_template(file_format)
    batch = data.draw(st.lists(payments, min_size=1, max_size=5))
    vendor = data.draw(texts)
    if file_format == "xml":
        strings = [vendor] + [t for p in batch for t in (p.note, p.payment_type, p.currency_code)]
        if not all(xml_safe(text) for text in strings):
            rows = [
                row
                for p in batch
                for row in render_rows(
                    template, p, vendor_names={1: vendor}, bills=_bills(p, vendor)
                )
            ]
            with pytest.raises(RenderError):
                render_file(template, Kind.PAYMENT, rows)
            return
    rows = [
        row
        for p in batch
        for row in render_rows(template, p, vendor_names={1: vendor}, bills=_bills(p, vendor))
    ]
    records = parse_bytes(render_file(template, Kind.PAYMENT, rows), "x.data", template)
    assert len(records) == len(batch)
    for payment, record in zip(batch, records, strict=True):
        assert_round_trip(payment, vendor, record)


def _bills(payment: BillPayment, vendor: str) -> dict[int, Bill]:
    bill = Bill(
        payment.bill_id,
        1,
        "N",
        date(2026, 1, 1),
        date(2026, 1, 1),
        "USD",
        Decimal(0),
        Decimal(0),
        Decimal(0),
        Decimal(0),
        Decimal(0),
        "x",
    )
    return {payment.bill_id: bill}


@pytest.mark.parametrize(
    "amount", [Decimal("-100.00"), Decimal("-0.01"), Decimal("+5"), Decimal("1E+3")]
)
def test_negative_amounts_survive_the_round_trip_unguarded(amount: Decimal) -> None:
    template = round_trip_template("csv")
    payment = BillPayment(1, 42, amount, "USD", date(2026, 11, 25), "=cmd", note="-S1")
    rows = render_rows(template, payment, vendor_names={1: "@v"}, bills=_bills(payment, "@v"))
    (record,) = parse_bytes(render_file(template, Kind.PAYMENT, rows), "x.data", template)
    assert record.amount == amount
    assert record.stampli_invoice_id == "-S1"
    assert record.payment_method == "=cmd"
    assert record.vendor_name == "@v"


def test_bom_crlf_reordered_and_extra_columns_and_quoted_newlines_are_tolerated() -> None:
    data = (
        b"\xef\xbb\xbfapprover ,Extra Col,STAMPLI INVOICE ID,Approval Status,Approved At\r\n"
        b'"Ann\r\nB\xc3\xa9",x,S-1,Pending Approval,2026-11-25T10:00:00Z\r\n'
        b"\r\n"
        b"Bo,y,S-2,Approved,2026-11-25T12:00:00+02:00\r\n"
    )
    first, second = parse_bytes(data)
    assert first.stampli_invoice_id == "S-1"
    assert first.approver == "Ann\r\nBé"
    assert first.status == "pending_approval"
    assert first.occurred_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert first.extra == {"Extra Col": "x"}
    assert first.fb_bill_id is None
    assert first.source_file == APPROVAL
    assert first.source_line == 2
    assert second.occurred_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert second.source_line == 5
    assert second.export_kind is ExportKind.APPROVAL


def test_lf_line_endings_and_naive_times_as_utc() -> None:
    data = f"{APPROVAL_HEADER}\nS-1,42,Rejected,Ann,2026-11-25 10:00\n".encode()
    (record,) = parse_bytes(data)
    assert record.fb_bill_id == 42
    assert record.status == "rejected"
    assert record.occurred_at == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("Pending Approval", "pending_approval"),
        ("  ON-HOLD (AP) ", "on_hold_ap"),
        ("Approved", "approved"),
        ("Genehmigt – Stufe 2", "genehmigt_stufe_2"),
        ("", ""),
    ],
)
def test_unknown_statuses_are_kept_as_lower_snake_text(raw: str, normalised: str) -> None:
    assert normalise_status(raw) == normalised


def test_payment_export_parses_amounts_and_dates() -> None:
    data = (
        b"Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,Currency,"
        b"Payment Method,Status,Vendor Name,Invoice Number\r\n"
        b"S-9,42,P-1,2026-11-20,-113.50,USD,ACH,Paid,Acme,INV-1\r\n"
    )
    (record,) = parse_bytes(data, "stampli_payments_1.csv")
    assert record.export_kind is ExportKind.PAYMENT
    assert record.amount == Decimal("-113.50")
    assert record.payment_date == date(2026, 11, 20)
    assert record.payment_id == "P-1"
    assert record.status == "paid"


BAD_EXPORTS = [
    ("", 1, None, "empty file"),
    ("Stampli Invoice ID,Approver\r\nS-1,Ann\r\n", 1, "Approval Status", "missing required column"),
    (
        f"{APPROVAL_HEADER}\r\nS-1,42,Approved,Ann,2026-11-25\r\nS-2,43,Approved\r\n",
        3,
        None,
        "ragged row: 3 fields",
    ),
    (f"{APPROVAL_HEADER}\r\nS-1,42a,Approved,Ann,\r\n", 2, "FreshBooks Bill ID", "bad id"),
    (f"{APPROVAL_HEADER}\r\nS-1,42,Approved,Ann,2026-13-01\r\n", 2, "Approved At", "bad datetime"),
    (f"{APPROVAL_HEADER}\r\n,42,Approved,Ann,\r\n", 2, "Stampli Invoice ID", "missing value"),
    (f'{APPROVAL_HEADER}\r\nS-1,42,Approved,"Ann\r\n', 2, None, "unexpected end of data"),
    (f'{APPROVAL_HEADER}\r\nS-1,42,Approved,"Ann"x,\r\n', 2, None, "expected after"),
]


@pytest.mark.parametrize(("text", "line", "column", "reason"), BAD_EXPORTS)
def test_malformed_export_names_file_line_and_column(
    text: str, line: int, column: str | None, reason: str
) -> None:
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(text.encode())
    error = caught.value
    assert (error.file, error.line, error.column) == (APPROVAL, line, column)
    assert reason in error.reason
    assert APPROVAL in str(error)


@pytest.mark.parametrize(
    "amount", ["12,50", "1e5", "NaN", "Infinity", "1,000.00", "12.5.1", "$5", "1_000"]
)
def test_amounts_that_are_not_plain_decimals_are_refused(amount: str) -> None:
    header = b"Stampli Invoice ID,Payment ID,Payment Date,Amount\r\n"
    data = header + f'S-1,P-1,2026-11-20,"{amount}"\r\n'.encode()
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(data, "x_payment.csv")
    assert (caught.value.line, caught.value.column) == (2, "Amount")


@pytest.mark.parametrize("bill_id", ["9" * 23, str(2**63)])
def test_an_id_too_large_to_store_is_a_parse_error_not_a_crash(bill_id: str) -> None:
    # Once an OverflowError in SQLite on every pull, holding up every later export.
    header = b"Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount\r\n"
    data = header + f"S-1,{bill_id},P-1,2026-11-20,5.00\r\n".encode()
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(data, "x_payment.csv")
    assert (caught.value.line, caught.value.column) == (2, "FreshBooks Bill ID")
    assert "too large" in caught.value.reason


def test_a_column_the_template_reads_that_appears_twice_is_a_parse_error() -> None:
    header = (
        b"Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,"
        b"Freshbooks bill id\r\n"
    )
    data = header + b"S-1,10,P-1,2026-11-20,5.00,11\r\n"
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(data, "x_payment.csv")
    assert (caught.value.line, caught.value.column) == (1, "FreshBooks Bill ID")
    assert "twice" in caught.value.reason


def test_bad_encoding_names_the_line_it_is_on() -> None:
    raw = (
        f"{APPROVAL_HEADER}\r\nS-1,42,Approved,Ann,\r\n".encode() + b"S-2,43,Approved,\xff\xfe,\r\n"
    )
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(raw)
    assert caught.value.line == 3
    assert "not valid utf-8 text" in caught.value.reason


def test_parsing_leaves_the_callers_stream_open() -> None:
    stream = io.BytesIO(f"{APPROVAL_HEADER}\r\nS-1,42,Approved,Ann,\r\n".encode())
    assert len(list(parse_export(TEMPLATE, APPROVAL, stream))) == 1
    assert not stream.closed


def test_file_the_template_does_not_describe_is_an_export_parse_error() -> None:
    with pytest.raises(ExportParseError, match="describes no export"):
        parse_bytes(b"a,b\r\n", "unrelated.txt")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("stampli_capture_20261125.csv", ExportKind.CAPTURE),
        ("Invoice-CAPTURES.CSV", ExportKind.CAPTURE),
        ("approvals_2026.csv", ExportKind.APPROVAL),
        ("stampli_payments.csv", ExportKind.PAYMENT),
        (".stampli_capture.csv.part", None),
        ("stampli_capture.csv.part", None),
        ("fbstampli_acme_20261125T101500Z_b000042_3-payments.csv", None),
        ("readme.txt", None),
    ],
)
def test_export_kind_is_detected_by_name(name: str, kind: ExportKind | None) -> None:
    assert detect_export_kind(TEMPLATE, name) is kind


XML_TEMPLATE = parse_template(
    """
[template]
name = "xml"
[vendor]
columns = [{ header = "Id", source = "fb_id" }]
[bill]
columns = [{ header = "Id", source = "fb_id" }]
[payment]
columns = [{ header = "Id", source = "fb_id" }]
[exports.approval]
match = "*.xml"
format = { format = "xml", xml_root = "Approvals", xml_row = "Invoice" }
columns = [
  { header = "InvoiceId", field = "stampli_invoice_id" },
  { header = "BillId", field = "fb_bill_id" },
  { header = "Status", field = "status", required = true },
  { header = "Amount", field = "amount" },
]
"""
)


def test_xml_export_is_parsed_row_by_row_with_lines() -> None:
    data = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<Approvals>\n'
        b"  <Invoice><InvoiceId>S-1</InvoiceId><BillId>42</BillId>"
        b"<Status>Approved</Status><Note>x &amp; y</Note></Invoice>\n"
        b"  <Invoice>\n    <InvoiceId>S-2</InvoiceId>\n    <status>On Hold</status>\n"
        b"    <Amount>-1.50</Amount>\n  </Invoice>\n</Approvals>\n"
    )
    first, second = parse_bytes(data, "a.xml", XML_TEMPLATE)
    assert (first.stampli_invoice_id, first.fb_bill_id, first.status) == ("S-1", 42, "approved")
    assert first.extra == {"Note": "x & y"}
    assert first.source_line == 3
    assert (second.stampli_invoice_id, second.status, second.amount) == (
        "S-2",
        "on_hold",
        Decimal("-1.50"),
    )
    assert second.source_line == 4


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"<Approvals>\n<Invoice><InvoiceId>S-1</Invoice>\n</Approvals>", 2, "XML error"),
        (
            b"<Approvals>\n<Invoice><InvoiceId>S-1</InvoiceId></Invoice>\n</Approvals>",
            2,
            "missing value",
        ),
        (
            b"<Approvals><Invoice><InvoiceId>S</InvoiceId><Status>x</Status><BillId>4x</BillId>"
            b"</Invoice></Approvals>",
            1,
            "bad id",
        ),
        (b"", 1, "XML error"),
    ],
)
def test_malformed_xml_names_the_line(data: bytes, line: int, reason: str) -> None:
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(data, "a.xml", XML_TEMPLATE)
    assert caught.value.line == line
    assert reason in caught.value.reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Approvals><Invoice><InvoiceId>&lol4;</InvoiceId><Status>x</Status></Invoice></Approvals>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<Approvals><Invoice><InvoiceId>&e;</InvoiceId><Status>x</Status></Invoice></Approvals>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_with_a_dtd_or_entities_is_refused(data: bytes) -> None:
    with pytest.raises(ExportParseError, match="DTD or entities is refused"):
        parse_bytes(data, "bomb.xml", XML_TEMPLATE)


def test_rendering_xml_refuses_characters_xml_cannot_carry() -> None:
    template = round_trip_template("xml")
    payment = BillPayment(1, 2, Decimal(1), "USD", date(2026, 1, 1), note="a\x01b")
    rows = render_rows(template, payment, vendor_names={1: "v"}, bills=_bills(payment, "v"))
    with pytest.raises(RenderError, match=r"XML 1\.0"):
        render_file(template, Kind.PAYMENT, rows)


@pytest.mark.slow
def test_large_export_is_parsed_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "stampli_capture_big.csv"
    blob = "x" * 900
    row_count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("Stampli Invoice ID,FreshBooks Bill ID,Invoice Total,Status,Blob\r\n")
        while handle.tell() < 50 * 1024 * 1024:
            row_count += 1
            handle.write(f'S-{row_count},{row_count},{row_count}.25,Captured,"{blob}\r\n"\r\n')
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = 0
        with path.open("rb") as stream:
            for record in parse_export(TEMPLATE, path.name, stream):
                count += 1
                last = record
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == row_count
    assert last.fb_bill_id == row_count
    assert last.amount == Decimal(f"{row_count}.25")
    assert peak < size / 20, f"peak {peak} bytes for a {size}-byte file"


def test_overlong_line_is_refused_without_reading_it_whole() -> None:
    from fbstampli.stampli import parse

    data = APPROVAL_HEADER.encode() + b"\r\n" + b"a" * (parse.MAX_LINE_BYTES + 10)
    with pytest.raises(ExportParseError) as caught:
        parse_bytes(data)
    assert caught.value.line == 2
    assert "line longer than" in caught.value.reason


# ---- hostile shapes: bounded per row, every failure an ExportParseError -----------------------


def test_xml_declaring_utf_7_is_a_parse_error_not_a_crash() -> None:
    data = b'<?xml version="1.0" encoding="UTF-7"?>\n<Approvals><Invoice/></Approvals>\n'
    with pytest.raises(ExportParseError, match="cannot read"):
        parse_bytes(data, "a.xml", XML_TEMPLATE)


def test_an_xml_row_of_endless_fields_is_refused_not_held() -> None:
    fields = b"".join(b"<F%d>v</F%d>" % (n, n) for n in range(2000))
    data = b"<Approvals><Invoice><Status>ok</Status>" + fields + b"</Invoice></Approvals>"
    with pytest.raises(ExportParseError, match="more than 1000 columns"):
        parse_bytes(data, "a.xml", XML_TEMPLATE)


def test_an_xml_row_bigger_than_the_row_budget_is_refused() -> None:
    value = b"x" * (100 * 1024)  # each under the per-value cap; together over the row cap
    fields = b"".join(b"<F%d>%s</F%d>" % (n, value, n) for n in range(60))
    data = b"<Approvals><Invoice><Status>ok</Status>" + fields + b"</Invoice></Approvals>"
    with pytest.raises(ExportParseError, match="row longer than"):
        parse_bytes(data, "a.xml", XML_TEMPLATE)


def test_a_csv_row_spread_over_many_quoted_lines_is_capped_as_a_row() -> None:
    header = b"Stampli Invoice ID,Approval Status,Note\r\n"
    field = b'"' + b"y" * 50_000 + b"\n" + b"y" * 50_000 + b'"'  # under the field cap
    data = header + b"S-1,approved," + b",".join([field] * 60) + b"\r\n"
    with pytest.raises(ExportParseError, match="row longer than"):
        parse_bytes(data)
