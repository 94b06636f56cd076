"""The shapes a Stampli template describes: file formats, columns and layouts, as frozen data.

What each outgoing file may draw on (`SOURCE_FIELDS`) and what an export may
fill (`RECORD_FIELDS`) live here too, beside the types that name them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from fbstampli.models import ExportKind, Kind

ISO = "iso"
"""A date or datetime format meaning ISO 8601 (`2026-11-25`, `2026-11-25T10:15:00Z`)."""

LINE_ENDINGS = {"crlf": "\r\n", "lf": "\n"}


class FieldType(StrEnum):
    """What a column holds; the type, never the content, decides how a value is written.

    Only `TEXT` is neutralised against formula injection, and only in a file whose
    `formula_guard` is on. `PHONE` is text that is left alone when
    it is nothing but digits and phone punctuation (a leading `+` is normal there).
    """

    TEXT = "text"
    PHONE = "phone"
    ID = "id"
    INTEGER = "integer"
    AMOUNT = "amount"
    DECIMAL = "decimal"
    DATE = "date"
    DATETIME = "datetime"
    BOOL = "bool"
    STATUS = "status"  # export only: normalised to lower_snake


# Source fields each outgoing file can draw on, and their types. Bill rows are one per bill line
# (header fields repeated); `line.*` fields come from the line. `vendor_name` on bills and the
# `bill_number`/`vendor_*` fields on payments are looked up by the renderer; a bill's
# `document_type` is worked out from its total's sign (`invoice`, or `credit` below zero).
# An expense category: the coding list, sent before the vendors (`parent_id` is the id of the
# category it sits under; `active` is yes/no, `vis_state` the word).
_CATEGORY_FIELDS: dict[str, FieldType] = {
    "fb_id": FieldType.ID,
    "name": FieldType.TEXT,
    "code": FieldType.TEXT,
    "parent_id": FieldType.ID,
    "is_cogs": FieldType.BOOL,
    "active": FieldType.BOOL,
    "vis_state": FieldType.TEXT,
    "updated_at": FieldType.DATETIME,
}

# A tax: the other coding list (`number` is the business's registration number for it).
_TAX_FIELDS: dict[str, FieldType] = {
    "fb_id": FieldType.ID,
    "name": FieldType.TEXT,
    "number": FieldType.TEXT,
    "percent": FieldType.DECIMAL,
    "compound": FieldType.BOOL,
    "active": FieldType.BOOL,
    "vis_state": FieldType.TEXT,
    "updated_at": FieldType.DATETIME,
}

_VENDOR_FIELDS: dict[str, FieldType] = {
    "fb_id": FieldType.ID,
    "name": FieldType.TEXT,
    "contact_first_name": FieldType.TEXT,
    "contact_last_name": FieldType.TEXT,
    "email": FieldType.TEXT,
    "phone": FieldType.PHONE,
    "website": FieldType.TEXT,
    "street": FieldType.TEXT,
    "street2": FieldType.TEXT,
    "city": FieldType.TEXT,
    "province": FieldType.TEXT,
    "postal_code": FieldType.TEXT,
    "country": FieldType.TEXT,
    "currency_code": FieldType.TEXT,
    "language": FieldType.TEXT,
    "account_number": FieldType.TEXT,
    "is_1099": FieldType.BOOL,
    "note": FieldType.TEXT,
    "vis_state": FieldType.TEXT,
    "updated_at": FieldType.DATETIME,
}

_BILL_FIELDS: dict[str, FieldType] = {
    "fb_id": FieldType.ID,
    "vendor_id": FieldType.ID,
    "vendor_name": FieldType.TEXT,
    "bill_number": FieldType.TEXT,
    "issue_date": FieldType.DATE,
    "due_date": FieldType.DATE,
    "due_offset_days": FieldType.INTEGER,
    "document_type": FieldType.TEXT,
    "document_file": FieldType.TEXT,
    "document_sha256": FieldType.TEXT,
    "document_status": FieldType.TEXT,
    "currency_code": FieldType.TEXT,
    "amount": FieldType.AMOUNT,
    "tax_amount": FieldType.AMOUNT,
    "total_amount": FieldType.AMOUNT,
    "outstanding": FieldType.AMOUNT,
    "paid": FieldType.AMOUNT,
    "status": FieldType.TEXT,
    "description": FieldType.TEXT,
    "language": FieldType.TEXT,
    "vis_state": FieldType.TEXT,
    "created_at": FieldType.DATETIME,
    "updated_at": FieldType.DATETIME,
    "line_count": FieldType.INTEGER,
    "line.list_index": FieldType.INTEGER,
    "line.description": FieldType.TEXT,
    "line.quantity": FieldType.DECIMAL,
    "line.unit_cost": FieldType.AMOUNT,
    "line.amount": FieldType.AMOUNT,
    "line.category": FieldType.TEXT,
    "line.category_id": FieldType.ID,
    "line.tax_name1": FieldType.TEXT,
    "line.tax_percent1": FieldType.DECIMAL,
    "line.tax_amount1": FieldType.AMOUNT,
    "line.tax_name2": FieldType.TEXT,
    "line.tax_percent2": FieldType.DECIMAL,
    "line.tax_amount2": FieldType.AMOUNT,
}

_PAYMENT_FIELDS: dict[str, FieldType] = {
    "fb_id": FieldType.ID,
    "bill_id": FieldType.ID,
    "amount": FieldType.AMOUNT,
    "currency_code": FieldType.TEXT,
    "paid_date": FieldType.DATE,
    "payment_type": FieldType.TEXT,
    "note": FieldType.TEXT,
    "vis_state": FieldType.TEXT,
    "bill_number": FieldType.TEXT,
    "vendor_id": FieldType.ID,
    "vendor_name": FieldType.TEXT,
}

# Filled when a version is queued, not when it is rendered: what the version does to the
# object in Stampli (NEW, UPDATE, VOID, RESTORE, as `[actions]` words them) and its number.
STAMPED_FIELDS: dict[str, FieldType] = {"action": FieldType.TEXT, "version": FieldType.INTEGER}

SOURCE_FIELDS: dict[Kind, dict[str, FieldType]] = {
    Kind.CATEGORY: {**_CATEGORY_FIELDS, **STAMPED_FIELDS},
    Kind.TAX: {**_TAX_FIELDS, **STAMPED_FIELDS},
    Kind.VENDOR: {**_VENDOR_FIELDS, **STAMPED_FIELDS},
    Kind.BILL: {**_BILL_FIELDS, **STAMPED_FIELDS},
    Kind.PAYMENT: {**_PAYMENT_FIELDS, **STAMPED_FIELDS},
}

ACTIONS = ("new", "update", "void", "restore")
DEFAULT_ACTION_WORDS: tuple[tuple[str, str], ...] = tuple((a, a.upper()) for a in ACTIONS)
"""The Action column's words, per action; a template's `[actions]` table may reword them."""

RECORD_FIELDS: dict[str, FieldType] = {
    "stampli_invoice_id": FieldType.TEXT,
    "fb_bill_id": FieldType.ID,
    "status": FieldType.STATUS,
    "vendor_id": FieldType.TEXT,
    "vendor_name": FieldType.TEXT,
    "invoice_number": FieldType.TEXT,
    "approver": FieldType.TEXT,
    "occurred_at": FieldType.DATETIME,
    "payment_id": FieldType.TEXT,
    "payment_date": FieldType.DATE,
    "amount": FieldType.AMOUNT,
    "currency_code": FieldType.TEXT,
    "payment_method": FieldType.TEXT,
    "invoice_date": FieldType.DATE,
}
"""`StampliRecord` fields an export column may fill; unmapped columns land in `extra`."""

# Section names in the TOML file; `payment` is FreshBooks' bill payment, `category` its
# expense category. `{seq}` puts the masters first in name order: 0 categories, 1 vendors.
SECTION_OF_KIND = {
    Kind.CATEGORY: "category",
    Kind.TAX: "tax",
    Kind.VENDOR: "vendor",
    Kind.BILL: "bill",
    Kind.PAYMENT: "payment",
}
SEQUENCE_OF_KIND = {Kind.CATEGORY: 0, Kind.TAX: 0, Kind.VENDOR: 1, Kind.BILL: 2, Kind.PAYMENT: 3}
# `{kinds}`: the plural file-name word (`{kind}s` would give "categorys").
PLURAL_OF_KIND = {
    Kind.CATEGORY: "categories",
    Kind.TAX: "taxes",
    Kind.VENDOR: "vendors",
    Kind.BILL: "bills",
    Kind.PAYMENT: "payments",
}
FILE_NAME_FIELDS = frozenset({"business", "timestamp", "batch", "seq", "kind", "kinds"})
# The `[category]` columns of a template that has no such section (one written before the
# coding list existed): the same as the packaged default's. (header, source, format)
DEFAULT_CATEGORY_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("GL Account ID", "fb_id", ""),
    ("GL Account Code", "code", ""),
    ("GL Account Name", "name", ""),
    ("Parent GL Account ID", "parent_id", ""),
    ("Active", "active", "yes|no"),
    ("Cost of Goods Sold", "is_cogs", "yes|no"),
    ("Action", "action", ""),
    ("Version", "version", ""),
)
DEFAULT_TAX_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Tax ID", "fb_id", ""),
    ("Tax Code", "name", ""),
    ("Tax Percent", "percent", ""),
    ("Tax Number", "number", ""),
    ("Compound", "compound", "yes|no"),
    ("Active", "active", "yes|no"),
    ("Action", "action", ""),
    ("Version", "version", ""),
)

XML_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How one file is laid out on disk."""

    format: str = "csv"  # csv or xml
    encoding: str = "utf-8"  # never a BOM when writing; a BOM is tolerated when reading
    delimiter: str = ","
    line_ending: str = "\r\n"
    header: bool = True
    quote_all: bool = False
    date_format: str = ISO
    datetime_format: str = ISO
    decimal_separator: str = "."
    xml_root: str = "records"
    xml_row: str = "record"
    # Off: files Stampli's importer reads by machine must carry the vendor's own text
    # (`-Minus Logistics`, `-0042`). On: for a file a person opens in a spreadsheet.
    formula_guard: bool = False


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a file we send: its header, where its value comes from, and its type."""

    header: str
    source: str  # a field of SOURCE_FIELDS[kind]; empty for a constant column
    type: FieldType
    format: str = ""  # date/datetime: strftime pattern; bool: "true-text|false-text"
    value: str = ""  # the constant, when `source` is empty


@dataclass(frozen=True, slots=True)
class OutgoingLayout:
    kind: Kind
    file: FileFormat
    columns: tuple[Column, ...]

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(column.header for column in self.columns)


@dataclass(frozen=True, slots=True)
class ExportColumn:
    """One column of a Stampli export and the `StampliRecord` field it fills."""

    header: str
    field: str
    type: FieldType
    format: str = ""
    required: bool = False


@dataclass(frozen=True, slots=True)
class ExportLayout:
    kind: ExportKind
    match: tuple[str, ...]  # file-name globs, compared case-insensitively
    file: FileFormat
    columns: tuple[ExportColumn, ...]


@dataclass(frozen=True, slots=True)
class Template:
    """A validated template; `origin` says where it came from, for messages."""

    name: str
    origin: str
    file_name: str
    vendor: OutgoingLayout
    bill: OutgoingLayout
    payment: OutgoingLayout
    exports: tuple[ExportLayout, ...]
    actions: tuple[tuple[str, str], ...] = DEFAULT_ACTION_WORDS
    # A vendor rename re-sends the vendor's bills and payments (their vendor-name cells).
    resend_on_rename: bool = False
    # How bills' documents travel: "files" (each its own file, before the bills file naming
    # it) or "zip" (each bills file in a ZIP with the documents it names, at most zip_max_mb).
    documents: str = "files"
    zip_max_mb: int = 8

    # The coding list's layout; `template_rules.build` always gives one (the default's columns
    # when the file has no `[category]`).
    category: OutgoingLayout | None = None
    tax: OutgoingLayout | None = None

    @property
    def zip_limit(self) -> int | None:
        """The largest ZIP in bytes, or None when documents go as files of their own."""
        return self.zip_max_mb * 1024 * 1024 if self.documents == "zip" else None

    def layout(self, kind: Kind) -> OutgoingLayout:
        if kind in (Kind.CATEGORY, Kind.TAX):
            layout = self.category if kind is Kind.CATEGORY else self.tax
            if layout is None:
                raise ValueError(f"template {self.name!r} has no {kind.value} layout")
            return layout
        if kind is Kind.VENDOR:
            return self.vendor
        if kind is Kind.BILL:
            return self.bill
        return self.payment

    def export_layout(self, kind: ExportKind) -> ExportLayout | None:
        for layout in self.exports:
            if layout.kind is kind:
                return layout
        return None
