"""FreshBooks JSON -> fbstampli records, and FreshBooks error bodies -> one readable line.

Pure: no network, no clock. A field of the wrong type becomes a `RemoteError`
naming the object and the field, never a KeyError or TypeError traceback.
Missing or null fields take the model's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from fbstampli.errors import RemoteError
from fbstampli.models import Bill, BillLine, BillPayment, ExpenseCategory, Vendor, VisState

_ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class BusinessMembership:
    """One business the logged-in user can reach; `account_id` keys the accounting paths."""

    account_id: str | None  # a business without an accounting account has none
    business_id: int
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Callback:
    """A webhook registration as FreshBooks reports it (the verifier is never echoed back)."""

    callback_id: int
    event: str
    uri: str
    verified: bool


class _Reader:
    """Typed access to one JSON object, with errors that say which object and field."""

    def __init__(self, data: object, kind: str, id_key: str = "id") -> None:
        if not isinstance(data, Mapping):
            raise RemoteError(f"FreshBooks sent a {kind} that is not a JSON object")
        self.data: Mapping[str, Any] = data
        self.kind = kind
        raw_id = data.get(id_key, data.get("id"))
        self.label = f"{kind} {raw_id}" if raw_id is not None else kind

    def fail(self, key: str, expected: str) -> RemoteError:
        got = self.data.get(key)
        shown = repr(got)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return RemoteError(
            f"FreshBooks sent {self.label} with an unreadable `{key}`: expected {expected}, "
            f"got {shown}"
        )

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key)
        if value is None or value == "":
            if default is None:
                raise self.fail(key, "an id")
            return default
        if isinstance(value, bool):
            raise self.fail(key, "a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise self.fail(key, "a whole number")

    def optional_integer(self, key: str) -> int | None:
        if self.data.get(key) in (None, ""):
            return None
        return self.integer(key)

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.fail(key, "text")
        return str(value)

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if value in (0, 1, "0", "1", "true", "false"):
            return value in (1, "1", "true")
        raise self.fail(key, "true or false")

    def number(self, key: str) -> Decimal | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        number = _to_decimal(value)
        if number is None:
            raise self.fail(key, "a number")
        return number

    def money(self, key: str) -> tuple[Decimal, str]:
        """(amount, currency code); FreshBooks sends `{"amount": "12.50", "code": "USD"}`."""
        value = self.data.get(key)
        if value is None:
            return _ZERO, ""
        if isinstance(value, Mapping):
            raw_amount = value.get("amount")
            amount = _ZERO if raw_amount is None else _to_decimal(raw_amount)
            code = value.get("code")
            if amount is None or not (code is None or isinstance(code, str)):
                raise self.fail(key, "money {amount, code}")
            return amount, code or ""
        amount = _to_decimal(value)
        if amount is None:
            raise self.fail(key, "money {amount, code}")
        return amount, ""

    def day(self, key: str) -> date | None:
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, "a date YYYY-MM-DD")
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise self.fail(key, "a date YYYY-MM-DD") from None

    def required_day(self, key: str) -> date:
        value = self.day(key)
        if value is None:
            raise self.fail(key, "a date YYYY-MM-DD")
        return value

    def timestamp(self, key: str, zone: tzinfo = UTC) -> datetime | None:
        """Bill and vendor timestamps are UTC even without a zone (FRESHBOOKS-BEHAVIOUR.md §2.8);
        `zone` is the one FreshBooks was seen to use instead (`models.behaviour`)."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(key, "a timestamp YYYY-MM-DD HH:MM:SS")
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(key, "a timestamp YYYY-MM-DD HH:MM:SS") from None
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone).astimezone(UTC)
        return moment.astimezone(UTC)

    def vis_state(self) -> VisState:
        raw = self.integer("vis_state", default=0)
        try:
            return VisState(raw)
        except ValueError:
            raise self.fail("vis_state", "0, 1 or 2") from None

    def rows(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, "a list")
        return value


def _to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        # A str or int as it is (Decimal strips a string's whitespace itself, and an int's
        # text is the int); a float through its shortest text, never its binary expansion.
        exact = type(value) is str or type(value) is int
        number = Decimal(value if exact else str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def parse_vendor(data: object, zone: tzinfo = UTC) -> Vendor:
    """`zone`: what vendor times are written in, when it was seen not to be UTC."""
    r = _Reader(data, "vendor", id_key="vendorid")
    return Vendor(
        fb_id=r.integer("vendorid") if r.get("vendorid") is not None else r.integer("id"),
        name=r.text("vendor_name"),
        contact_first_name=r.text("primary_contact_first_name"),
        contact_last_name=r.text("primary_contact_last_name"),
        email=r.text("primary_contact_email"),
        phone=r.text("phone"),
        website=r.text("website"),
        street=r.text("street"),
        street2=r.text("street2"),
        city=r.text("city"),
        province=r.text("province"),
        postal_code=r.text("postal_code"),
        country=r.text("country"),
        currency_code=r.text("currency_code"),
        language=r.text("language"),
        account_number=r.text("account_number"),
        is_1099=r.flag("is_1099"),
        note=r.text("note"),
        vis_state=r.vis_state(),
        updated_at=r.timestamp("updated_at", zone),
    )


def _category(r: _Reader) -> tuple[str, int | None]:
    """A line's category is a name in some captures and a nested object in others."""
    raw = r.get("category")
    category_id = r.optional_integer("categoryid")
    if isinstance(raw, Mapping):
        nested = _Reader(raw, f"{r.label} category", id_key="categoryid")
        if category_id is None:
            category_id = nested.optional_integer("categoryid")
        return nested.text("category"), category_id
    return r.text("category"), category_id


def parse_bill_line(data: object, bill_label: str, position: int) -> BillLine:
    r = _Reader(data, f"{bill_label} line", id_key="list_index")
    quantity = r.number("quantity")
    unit_cost, _ = r.money("unit_cost")
    amount, _ = r.money("amount")
    category, category_id = _category(r)
    tax_amount1 = r.money("tax_amount1")[0] if r.get("tax_amount1") is not None else None
    tax_amount2 = r.money("tax_amount2")[0] if r.get("tax_amount2") is not None else None
    return BillLine(
        list_index=r.integer("list_index", default=position),
        description=r.text("description"),
        quantity=quantity if quantity is not None else Decimal("1"),
        unit_cost=unit_cost,
        amount=amount,
        category=category,
        category_id=category_id,
        tax_name1=r.text("tax_name1"),
        tax_percent1=r.number("tax_percent1"),
        tax_amount1=tax_amount1,
        tax_name2=r.text("tax_name2"),
        tax_percent2=r.number("tax_percent2"),
        tax_amount2=tax_amount2,
    )


def parse_bill(data: object) -> Bill:
    r = _Reader(data, "bill")
    amount, amount_code = r.money("amount")
    issue_date = r.required_day("issue_date")
    description = r.text("overall_description") or r.text("description")
    return Bill(
        fb_id=r.integer("id"),
        vendor_id=r.integer("vendorid"),
        bill_number=r.text("bill_number"),
        issue_date=issue_date,
        due_date=r.day("due_date") or issue_date,
        currency_code=r.text("currency_code") or amount_code,
        amount=amount,
        tax_amount=r.money("tax_amount")[0],
        total_amount=r.money("total_amount")[0],
        outstanding=r.money("outstanding")[0],
        paid=r.money("paid")[0],
        status=r.text("status"),
        description=description,
        language=r.text("language"),
        lines=tuple(
            parse_bill_line(line, r.label, position)
            for position, line in enumerate(r.rows("lines"), start=1)
        ),
        vis_state=r.vis_state(),
        created_at=r.timestamp("created_at"),
        updated_at=r.timestamp("updated_at"),
        due_offset_days=r.optional_integer("due_offset_days"),
        attachment_jwt=_attachment_jwt(r),
    )


def _attachment_jwt(r: _Reader) -> str:
    """The `jwt` of the bill's `attachment` object; "" when it is null or names no token."""
    raw = r.get("attachment")
    if not isinstance(raw, dict):
        return ""
    return _Reader(raw, f"{r.label} attachment").text("jwt")


def parse_bill_payment(data: object, bill_currency: str = "") -> BillPayment:
    """`bill_currency` fills in when the payment's own amount carries no code."""
    r = _Reader(data, "bill payment")
    amount, code = r.money("amount")
    return BillPayment(
        fb_id=r.integer("id"),
        bill_id=r.integer("billid"),
        amount=amount,
        currency_code=code or bill_currency,
        paid_date=r.required_day("paid_date"),
        payment_type=r.text("payment_type"),
        note=r.text("note"),
        vis_state=r.vis_state(),
    )


def parse_embedded_payments(bill_data: object) -> list[BillPayment]:
    """The payments a bill carries in `bill_payments[]`, in the bill's currency where unset."""
    r = _Reader(bill_data, "bill")
    currency = r.text("currency_code")
    return [parse_bill_payment(row, currency) for row in r.rows("bill_payments")]


def parse_memberships(me_response: object) -> list[BusinessMembership]:
    r = _Reader(me_response, "identity")
    memberships: list[BusinessMembership] = []
    for row in r.rows("business_memberships"):
        membership = _Reader(row, "business membership")
        business = _Reader(membership.get("business") or {}, "business")
        account_id = business.text("account_id") or None
        memberships.append(
            BusinessMembership(
                account_id=account_id,
                business_id=business.integer("id"),
                name=business.text("name"),
                role=membership.text("role"),
            )
        )
    return memberships


def parse_callback(data: object) -> Callback:
    r = _Reader(data, "callback", id_key="callbackid")
    callback_id = r.integer("callbackid") if r.get("callbackid") is not None else r.integer("id")
    return Callback(
        callback_id=callback_id,
        event=r.text("event"),
        uri=r.text("uri"),
        verified=r.flag("verified"),
    )


def _one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _grpc_detail(details: object) -> str:
    """The most specific text inside google.rpc details (ErrorInfo metadata, field violations)."""
    if not isinstance(details, list):
        return ""
    parts: list[str] = []
    for detail in details:
        if isinstance(detail, str):
            parts.append(detail)
        elif isinstance(detail, Mapping):
            metadata = detail.get("metadata")
            if isinstance(metadata, Mapping) and isinstance(metadata.get("message"), str):
                parts.append(metadata["message"])
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, Mapping):
                    parts.append(f"{violation.get('field')}: {violation.get('description')}")
    return "; ".join(parts)


def error_message(body: object) -> str | None:
    """FreshBooks' own message from any of its four error shapes, or None if `body` is not one.

    Shapes (docs/FRESHBOOKS-BEHAVIOUR.md §4.3): accounting `response.errors[]`, gRPC-style
    `code`/`message`/`details`, events `errno`/`message`, auth `error`/`error_description`.
    """
    if not isinstance(body, Mapping):
        return None
    response = body.get("response")
    if isinstance(response, Mapping) and isinstance(response.get("errors"), list):
        texts = []
        for error in response["errors"]:
            if isinstance(error, Mapping):
                errno = error.get("errno")
                message = str(error.get("message") or "error")
                texts.append(f"{message} (errno {errno})" if errno is not None else message)
        return _one_line("; ".join(texts) or "unspecified error")
    if "error" in body and isinstance(body.get("error"), str):
        description = body.get("error_description")
        text = body["error"] + (f": {description}" if isinstance(description, str) else "")
        return _one_line(text)
    if "message" in body and ("code" in body or "errno" in body):
        message = str(body.get("message") or "error")
        detail = _grpc_detail(body.get("details"))
        return _one_line(f"{message} ({detail})" if detail else message)
    return None


def error_number(body: object) -> int | None:
    """The FreshBooks errno (accounting, events, or gRPC ErrorInfo reason), when there is one."""
    if not isinstance(body, Mapping):
        return None
    response = body.get("response")
    if isinstance(response, Mapping) and isinstance(response.get("errors"), list):
        for error in response["errors"]:
            if isinstance(error, Mapping) and isinstance(error.get("errno"), int):
                return int(error["errno"])
    if isinstance(body.get("errno"), int):
        return int(body["errno"])
    for detail in body.get("details") or []:
        if isinstance(detail, Mapping) and str(detail.get("reason", "")).isdigit():
            return int(detail["reason"])
    return None


def parse_expense_category(data: object) -> ExpenseCategory:
    """A row of `expenses/categories` (the SDK's `expenses_categories`): `categoryid` (or
    `id`), the name in `category`, `parentid`, `is_cogs`, `vis_state`, `updated_at`."""
    r = _Reader(data, "expense category", id_key="categoryid")
    fb_id = r.integer("categoryid") if r.get("categoryid") is not None else r.integer("id")
    parent = r.optional_integer("parentid")
    return ExpenseCategory(
        fb_id=fb_id,
        name=r.text("category"),
        parent_id=parent if parent else None,  # FreshBooks may say 0 for "no parent"
        code=r.text("code") or r.text("number"),
        is_cogs=r.flag("is_cogs"),
        vis_state=r.vis_state(),
        updated_at=r.timestamp("updated_at"),
    )
