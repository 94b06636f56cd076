"""The records that flow through fbstampli: FreshBooks objects in, Stampli records back.

Plain frozen data, no behaviour that touches the world. Money is `Decimal`,
timestamps are aware UTC datetimes, ids are FreshBooks' integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum


class Kind(StrEnum):
    """What a FreshBooks object is; the order of the members is delivery order: the coding
    lists (expense categories, taxes) and the vendors, the masters, before the bills."""

    CATEGORY = "expense_category"
    TAX = "tax"
    VENDOR = "vendor"
    BILL = "bill"
    PAYMENT = "bill_payment"


# The FreshBooks webhook events push-bills acts on, the one list of them: an event is
# named `<resource>.<action>` (`bill.create`, `bill_vendor.delete`), and a callback
# registered for the bare resource receives its create, update and delete events.
BILL_EVENTS = "bill"
VENDOR_EVENTS = "bill_vendor"
WEBHOOK_RESOURCES = (BILL_EVENTS, VENDOR_EVENTS)


def event_resource(event: str) -> str:
    """The resource an event name is about: `bill` for `bill.update`."""
    return event.partition(".")[0]


class VisState(IntEnum):
    ACTIVE = 0
    DELETED = 1
    ARCHIVED = 2


@dataclass(frozen=True, slots=True)
class Vendor:
    fb_id: int
    name: str
    contact_first_name: str = ""
    contact_last_name: str = ""
    email: str = ""
    phone: str = ""
    website: str = ""
    street: str = ""
    street2: str = ""
    city: str = ""
    province: str = ""
    postal_code: str = ""
    country: str = ""
    currency_code: str = ""
    language: str = ""
    account_number: str = ""
    is_1099: bool = False
    note: str = ""
    vis_state: VisState = VisState.ACTIVE
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BillLine:
    list_index: int
    description: str
    quantity: Decimal
    unit_cost: Decimal
    amount: Decimal
    category: str = ""
    category_id: int | None = None
    tax_name1: str = ""
    tax_percent1: Decimal | None = None
    tax_amount1: Decimal | None = None
    tax_name2: str = ""
    tax_percent2: Decimal | None = None
    tax_amount2: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Bill:
    fb_id: int
    vendor_id: int
    bill_number: str
    issue_date: date
    due_date: date
    currency_code: str
    amount: Decimal  # subtotal, excluding taxes
    tax_amount: Decimal
    total_amount: Decimal
    outstanding: Decimal
    paid: Decimal
    status: str
    description: str = ""
    language: str = ""
    lines: tuple[BillLine, ...] = ()
    vis_state: VisState = VisState.ACTIVE
    created_at: datetime | None = None
    updated_at: datetime | None = None
    due_offset_days: int | None = None  # terms: days from issue to due
    attachment_jwt: str = ""  # the document FreshBooks keeps with the bill, "" for none
    # What became of that document (sync/documents.py): the name it is sent under, its
    # bytes' SHA-256, and "ok" or why it is not sent; all "" for a bill without one.
    document_file: str = ""
    document_sha256: str = ""
    document_status: str = ""
    # Listed without a `lines` key (not: with no lines): `lines` is not what FreshBooks
    # holds, and the bill must be completed from its own GET before it is rendered.
    lines_missing: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class BillPayment:
    fb_id: int
    bill_id: int
    amount: Decimal
    currency_code: str
    paid_date: date
    payment_type: str = ""
    note: str = ""
    vis_state: VisState = VisState.ACTIVE


@dataclass(frozen=True, slots=True)
class ExpenseCategory:
    """One FreshBooks expense category: what a bill line is coded to (its GL account).

    FreshBooks gives no code or number for a category; `code` stays "" unless it does.
    """

    fb_id: int
    name: str
    parent_id: int | None = None
    code: str = ""
    is_cogs: bool = False
    vis_state: VisState = VisState.ACTIVE
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.vis_state == VisState.ACTIVE


@dataclass(frozen=True, slots=True)
class Tax:
    """One FreshBooks tax (`taxes/taxes`): what a bill line's Tax Code names, its rate in
    percent and the business's registration number for it (`number`)."""

    fb_id: int
    name: str
    percent: Decimal | None = None
    number: str = ""
    compound: bool = False
    vis_state: VisState = VisState.ACTIVE
    updated_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.vis_state == VisState.ACTIVE


SourceObject = ExpenseCategory | Tax | Vendor | Bill | BillPayment


def kind_of(obj: SourceObject) -> Kind:
    if isinstance(obj, ExpenseCategory):
        return Kind.CATEGORY
    if isinstance(obj, Tax):
        return Kind.TAX
    if isinstance(obj, Vendor):
        return Kind.VENDOR
    if isinstance(obj, Bill):
        return Kind.BILL
    return Kind.PAYMENT


class ExportKind(StrEnum):
    """Which Stampli export a record came from."""

    CAPTURE = "capture"
    APPROVAL = "approval"
    PAYMENT = "payment"


@dataclass(frozen=True, slots=True)
class StampliRecord:
    """One row of a Stampli export, linked back to FreshBooks by the bill id we wrote."""

    export_kind: ExportKind
    stampli_invoice_id: str
    fb_bill_id: int | None
    status: str = ""  # captured, pending_approval, approved, rejected, paid, ...
    vendor_id: str = ""
    vendor_name: str = ""
    invoice_number: str = ""
    approver: str = ""
    occurred_at: datetime | None = None
    payment_id: str = ""
    payment_date: date | None = None
    amount: Decimal | None = None
    currency_code: str = ""
    payment_method: str = ""
    invoice_date: date | None = None  # the vendor's invoice date, when the export has it
    source_file: str = ""
    source_line: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
