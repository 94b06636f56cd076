"""FreshBooks JSON becomes models (Decimal money, UTC times) or a RemoteError naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from fbstampli.errors import RemoteError
from fbstampli.freshbooks.parse import (
    _to_decimal,
    error_message,
    error_number,
    parse_bill,
    parse_bill_payment,
    parse_callback,
    parse_embedded_payments,
    parse_memberships,
    parse_vendor,
)
from fbstampli.models import VisState


def money(amount: str, code: str = "USD") -> dict[str, str]:
    return {"amount": amount, "code": code}


def bill_json(**changes: Any) -> dict[str, Any]:
    bill: dict[str, Any] = {
        "id": 501,
        "vendorid": 7,
        "bill_number": "INV-9",
        "issue_date": "2024-03-01",
        "due_date": "2024-03-31",
        "currency_code": "CAD",
        "language": "en",
        "amount": money("100.00", "CAD"),
        "tax_amount": money("13.00", "CAD"),
        "total_amount": money("113.00", "CAD"),
        "outstanding": money("63.00", "CAD"),
        "paid": money("50.00", "CAD"),
        "status": "partial",
        "due_offset_days": 30,
        "overall_description": "Paper and toner",
        "lines": [
            {
                "list_index": 1,
                "description": "Toner",
                "quantity": "2",
                "unit_cost": money("50.00", "CAD"),
                "amount": money("100.00", "CAD"),
                "categoryid": 11,
                "category": {"categoryid": 11, "category": "Office Supplies"},
                "tax_name1": "HST",
                "tax_percent1": "13",
                "tax_amount1": money("13.00", "CAD"),
                "tax_name2": None,
                "tax_percent2": None,
                "tax_amount2": None,
            }
        ],
        "bill_payments": [
            {"id": 9, "billid": 501, "amount": {"amount": "50.00"}, "paid_date": "2024-03-05"}
        ],
        "vis_state": 0,
        "created_at": "2024-03-01 10:00:00",
        "updated_at": "2024-03-05 19:23:46",
    }
    bill.update(changes)
    return bill


def test_bill_money_is_decimal_and_timestamps_are_utc() -> None:
    bill = parse_bill(bill_json())
    assert bill.total_amount == Decimal("113.00")
    assert isinstance(bill.paid, Decimal)
    assert bill.updated_at == datetime(2024, 3, 5, 19, 23, 46, tzinfo=UTC)
    assert bill.issue_date == date(2024, 3, 1)
    assert bill.description == "Paper and toner"


def test_bill_reads_its_terms_as_due_offset_days() -> None:
    assert parse_bill(bill_json()).due_offset_days == 30
    assert parse_bill(bill_json(due_offset_days=None)).due_offset_days is None


def test_bill_line_reads_string_quantity_and_nested_category() -> None:
    line = parse_bill(bill_json()).lines[0]
    assert line.quantity == Decimal("2")
    assert (line.category, line.category_id) == ("Office Supplies", 11)
    assert line.tax_percent1 == Decimal("13")
    assert line.tax_amount2 is None


def test_bill_line_reads_a_plain_category_name() -> None:
    raw = bill_json()
    raw["lines"][0]["category"] = "Travel"
    raw["lines"][0].pop("categoryid")
    line = parse_bill(raw).lines[0]
    assert (line.category, line.category_id) == ("Travel", None)


def test_missing_and_null_fields_take_defaults() -> None:
    bill = parse_bill(
        {"id": 1, "vendorid": 2, "issue_date": "2024-01-02", "bill_number": None, "lines": None}
    )
    assert bill.bill_number == ""
    assert bill.due_date == date(2024, 1, 2)
    assert bill.amount == Decimal("0")
    assert bill.lines == ()
    assert bill.vis_state is VisState.ACTIVE
    assert bill.updated_at is None
    assert bill.due_offset_days is None


def test_bill_currency_applies_to_embedded_payments_without_a_code() -> None:
    (payment,) = parse_embedded_payments(bill_json())
    assert payment.currency_code == "CAD"
    assert payment.amount == Decimal("50.00")


def test_payment_keeps_its_own_currency_code() -> None:
    payment = parse_bill_payment(
        {"id": 1, "billid": 2, "amount": money("5.10", "EUR"), "paid_date": "2024-02-02"}, "USD"
    )
    assert payment.currency_code == "EUR"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("vendorid", "seven", "bill 501 with an unreadable `vendorid`"),
        ("issue_date", "03/01/2024", "bill 501 with an unreadable `issue_date`"),
        ("total_amount", {"amount": "12,50", "code": "USD"}, "`total_amount`"),
        ("lines", {"not": "a list"}, "`lines`"),
        ("vis_state", 7, "`vis_state`"),
        ("updated_at", 1700000000, "`updated_at`"),
        ("amount", True, "`amount`"),
    ],
)
def test_wrong_types_raise_remote_error_naming_object_and_field(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(RemoteError, match=expected):
        parse_bill(bill_json(**{field: value}))


def test_wrong_type_inside_a_line_names_the_bill() -> None:
    raw = bill_json()
    raw["lines"][0]["quantity"] = "two"
    with pytest.raises(RemoteError, match=r"bill 501 line 1 with an unreadable `quantity`"):
        parse_bill(raw)


def test_non_finite_amount_is_refused() -> None:
    with pytest.raises(RemoteError, match="`paid`"):
        parse_bill(bill_json(paid=money("NaN")))


def test_a_bill_that_is_not_an_object_is_a_remote_error() -> None:
    with pytest.raises(RemoteError, match="not a JSON object"):
        parse_bill(["not", "a", "bill"])


def test_vendor_fields_map_to_the_model() -> None:
    vendor = parse_vendor(
        {
            "vendorid": 7,
            "vendor_name": "Northwind Paper",
            "primary_contact_email": "ap@northwind.example",
            "is_1099": True,
            "outstanding_balance": [{"amount": money("5.00")}],
            "vis_state": 2,
            "updated_at": "2024-01-01 00:00:01",
        }
    )
    assert (vendor.fb_id, vendor.name, vendor.email) == (
        7,
        "Northwind Paper",
        "ap@northwind.example",
    )
    assert vendor.is_1099
    assert vendor.vis_state is VisState.ARCHIVED
    assert vendor.updated_at == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_vendor_with_a_non_text_name_names_the_vendor() -> None:
    with pytest.raises(RemoteError, match="vendor 7 with an unreadable `vendor_name`"):
        parse_vendor({"vendorid": 7, "vendor_name": {"x": 1}})


def test_memberships_use_the_business_id_not_the_membership_id() -> None:
    me = {
        "business_memberships": [
            {
                "id": 140130,
                "role": "owner",
                "business": {"id": 439000, "name": "Acme", "account_id": "ABC123"},
            },
            {"id": 2, "role": "client", "business": {"id": 5, "name": "No books"}},
        ]
    }
    first, second = parse_memberships(me)
    assert (first.account_id, first.business_id, first.name, first.role) == (
        "ABC123",
        439000,
        "Acme",
        "owner",
    )
    assert second.account_id is None


def test_callback_reads_callbackid() -> None:
    callback = parse_callback(
        {"callbackid": 12, "event": "bill.create", "uri": "https://x.example/h", "verified": False}
    )
    assert (callback.callback_id, callback.event, callback.verified) == (12, "bill.create", False)


@pytest.mark.parametrize(
    ("body", "message", "errno"),
    [
        (
            {
                "response": {
                    "errors": [
                        {
                            "errno": 1012,
                            "field": "userid",
                            "message": "Client not found.",
                            "object": "client",
                            "value": "1",
                        }
                    ]
                }
            },
            "Client not found. (errno 1012)",
            1012,
        ),
        (
            {
                "code": 5,
                "message": "Request failed with status_code: 404",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "1012",
                        "domain": "accounting.api.freshbooks.com",
                        "metadata": {
                            "object": "bill",
                            "message": "Bill not found.",
                            "value": "3",
                            "field": "id",
                        },
                    }
                ],
            },
            "Request failed with status_code: 404 (Bill not found.)",
            1012,
        ),
        (
            {
                "errno": 401,
                "message": "invalid_token: The request token failed to authenticate or validate.",
            },
            "invalid_token: The request token failed to authenticate or validate.",
            401,
        ),
        (
            {
                "error": "unauthenticated",
                "error_description": "This action requires authentication to continue.",
            },
            "unauthenticated: This action requires authentication to continue.",
            None,
        ),
        (
            {
                "code": 3,
                "message": "Invalid data in this request.",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [
                            {"field": "event", "description": "Unrecognized event."}
                        ],
                    }
                ],
            },
            "Invalid data in this request. (event: Unrecognized event.)",
            None,
        ),
    ],
)
def test_every_error_shape_gives_one_line(body: object, message: str, errno: int | None) -> None:
    assert error_message(body) == message
    assert error_number(body) == errno


def test_a_success_body_is_not_an_error() -> None:
    assert error_message({"response": {"result": {"bills": []}}}) is None


@pytest.mark.parametrize(
    "value",
    [" 1.50 ", "\t-2\n", "1_000", "1e3", "0.10", "NaN", "abc", "", " ", 7, -3, 1.1, 0.1, 2.50],
)
def test_a_number_reads_as_its_text_did(value: object) -> None:
    """Text and ints go to Decimal directly (issue 17): the value must be what
    `Decimal(str(value).strip())` gave, a float its shortest text, never its binary form."""
    try:
        expected: Decimal | None = Decimal(str(value).strip())
    except InvalidOperation:
        expected = None
    if expected is not None and not expected.is_finite():
        expected = None
    got = _to_decimal(value)
    assert (got, str(got)) == (expected, str(expected))
