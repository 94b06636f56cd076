"""Turns vendors, bills and bill payments into the rows and file bytes a template asks for.

Pure: no I/O, no clock (the batch's creation time is passed in). The column's type, never the
value, decides whether a value may be touched: text is neutralised against spreadsheet formula
injection when the file's `formula_guard` is on (off by default: Stampli's importer reads these
files by machine), while amounts, dates and ids are always written exactly. Turning rows into a file
(bytes, hash, name) is `stampli/files.py`; its names are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from fbstampli.errors import RenderError
from fbstampli.models import (
    Bill,
    BillLine,
    BillPayment,
    ExpenseCategory,
    Kind,
    SourceObject,
    Tax,
    Vendor,
    VisState,
    kind_of,
)
from fbstampli.stampli import versions
from fbstampli.stampli.files import content_hash, file_name, render_file
from fbstampli.stampli.layouts import STAMPED_FIELDS
from fbstampli.stampli.template import (
    ISO,
    Column,
    FieldType,
    FileFormat,
    OutgoingLayout,
    Template,
    load_template,
)

Row = tuple[str, ...]

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_SAFE_PHONE = re.compile(r"^\+?[0-9 ().\-]*$")
# XML 1.0 cannot carry these characters at all, escaped or not.


def neutralise_formula(text: str) -> str:
    """Prefix `'` so a spreadsheet shows the text instead of evaluating it (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def format_decimal(value: Decimal, separator: str = ".") -> str:
    """Plain notation, no exponent, no thousands separator, no rounding."""
    if not value.is_finite():
        raise RenderError(f"amount {value} is not a finite number")
    text = format(value, "f")
    return text.replace(".", separator) if separator != "." else text


def _text(value: object, phone: bool, guard: bool = True) -> str:
    text = value.name.lower() if isinstance(value, VisState) else str(value)
    if not guard or (phone and _SAFE_PHONE.match(text)):
        return text
    return neutralise_formula(text)


Format = Callable[[object], str]


def _formatter(column: Column, file_format: FileFormat) -> Format:
    """How one column writes a value, with what the column and file decide worked out once.

    A render calls this per column per template, not per cell: the cell's own work is
    all that is left for each of a first sync's half a million cells.
    """
    field_type = column.type
    guard = file_format.formula_guard
    if field_type in (FieldType.AMOUNT, FieldType.DECIMAL):
        separator = file_format.decimal_separator

        def amount(value: object) -> str:
            if value is None:
                return ""
            if not isinstance(value, Decimal):
                raise RenderError(
                    f"column {column.header!r}: {type(value).__name__} is not a Decimal"
                )
            return format_decimal(value, separator)

        return amount
    if field_type is FieldType.DATETIME:
        pattern = column.format or file_format.datetime_format
        moment_pattern = "%Y-%m-%dT%H:%M:%SZ" if pattern == ISO else pattern

        def moment(value: object) -> str:
            if value is None:
                return ""
            if isinstance(value, datetime):
                aware = value if value.tzinfo else value.replace(tzinfo=UTC)
                return aware.astimezone(UTC).strftime(moment_pattern)
            return _text(value, False, guard)

        return moment
    if field_type is FieldType.DATE:
        day_pattern = column.format or file_format.date_format

        def day(value: object) -> str:
            if value is None:
                return ""
            if isinstance(value, date):
                return value.isoformat() if day_pattern == ISO else value.strftime(day_pattern)
            return _text(value, False, guard)

        return day
    if field_type is FieldType.BOOL:

        def yes_no(value: object) -> str:
            if value is None:
                return ""
            yes, no = (column.format or "true|false").split("|")
            return yes if value else no

        return yes_no
    if field_type in (FieldType.ID, FieldType.INTEGER):
        return lambda value: "" if value is None else str(int(str(value)))
    phone = field_type is FieldType.PHONE
    return lambda value: "" if value is None else _text(value, phone, guard)


def _format_value(value: object, column: Column, file_format: FileFormat) -> str:
    return _formatter(column, file_format)(value)


# What each column of a layout does: (constant, source, formatter); the formatter is None
# for a constant column. Kept per layout object (layouts live as long as their template).
Plan = tuple[tuple[str, str, Format | None], ...]
MAX_PLANS = 64
_PLANS: dict[int, tuple[OutgoingLayout, Plan, frozenset[str]]] = {}


def _planned(layout: OutgoingLayout) -> tuple[OutgoingLayout, Plan, frozenset[str]]:
    known = _PLANS.get(id(layout))
    if known is not None and known[0] is layout:
        return known
    plan = tuple(
        (column.value, column.source, _formatter(column, layout.file) if column.source else None)
        for column in layout.columns
    )
    if len(_PLANS) > MAX_PLANS:  # templates loaded over and over (tests): start afresh
        _PLANS.clear()
        _BILL_PLANS.clear()
    known = _PLANS[id(layout)] = (
        layout,
        plan,
        frozenset(column.source for column in layout.columns),
    )
    return known


def _plan(layout: OutgoingLayout) -> Plan:
    return _planned(layout)[1]


def _sources(layout: OutgoingLayout) -> frozenset[str]:
    """The sources a layout's columns name (constant columns name "")."""
    return _planned(layout)[2]


BillGetter = Callable[[Bill, BillLine | None, str | None], object]


def document_type(bill: Bill) -> str:
    """A bill whose total is below zero is the vendor's credit note, not an invoice to pay."""
    return "credit" if bill.total_amount < 0 else "invoice"


def _bill_getter(source: str) -> BillGetter:
    """`source`'s value for a bill row, the test of what it names made once."""
    if source in STAMPED_FIELDS:
        return lambda bill, line, vendor_name: None
    if source == "vendor_name":
        return lambda bill, line, vendor_name: vendor_name
    if source == "document_type":
        return lambda bill, line, vendor_name: document_type(bill)
    if source == "line_count":
        return lambda bill, line, vendor_name: len(bill.lines)
    if source.startswith("line."):
        field = source[5:]
        return lambda bill, line, vendor_name: getattr(line, field) if line is not None else None
    return lambda bill, line, vendor_name: getattr(bill, source)


BillPlan = tuple[tuple[str, Format | None, BillGetter | None], ...]
# Per layout: every column's step, and (index, formatter, getter) of the line columns.
LineSteps = tuple[tuple[int, Format, BillGetter], ...]
_BILL_PLANS: dict[int, tuple[OutgoingLayout, BillPlan, LineSteps]] = {}


def _bill_rows(
    layout: OutgoingLayout, bill: Bill, lines: Sequence[BillLine | None], vendor_name: str | None
) -> list[Row]:
    """A row per line. The bill's own cells are the same on every line: written for the
    first row (in column order, so the same cell fails first) and copied to the others."""
    known = _BILL_PLANS.get(id(layout))
    if known is None or known[0] is not layout:
        plan = _plan(layout)
        steps = tuple(
            (constant, formatter, _bill_getter(source) if formatter is not None else None)
            for constant, source, formatter in plan
        )
        line_steps = tuple(
            (index, formatter, _bill_getter(source))
            for index, (_, source, formatter) in enumerate(plan)
            if formatter is not None and source.startswith("line.")
        )
        known = _BILL_PLANS[id(layout)] = (layout, steps, line_steps)
    _, steps, line_steps = known
    first = lines[0]
    row = tuple(
        constant
        if formatter is None or getter is None
        else formatter(getter(bill, first, vendor_name))
        for constant, formatter, getter in steps
    )
    rows = [row]
    for line in lines[1:]:
        cells = list(row)
        for index, formatter, getter in line_steps:
            cells[index] = formatter(getter(bill, line, vendor_name))
        rows.append(tuple(cells))
    return rows


def render_rows(
    template: Template,
    obj: SourceObject,
    *,
    vendor_names: Mapping[int, str] | None = None,
    bills: Mapping[int, Bill] | None = None,
) -> list[Row]:
    """The data rows (no header) one object contributes to its file.

    A bill gives one row per line, header fields repeated (one row with empty line fields when
    it has no lines). `vendor_names` (vendor id -> name) is needed when a bill or payment column
    names the vendor; `bills` (bill id -> Bill) when a payment column names the bill's number or
    vendor. A missing entry raises `RenderError`, never a silently empty cell.
    """
    kind = kind_of(obj)
    layout = template.layout(kind)
    sources = _sources(layout)
    if isinstance(obj, Vendor | ExpenseCategory | Tax):
        return [_row(layout, lambda source: _unstamped(obj, source))]
    if isinstance(obj, Bill):
        vendor_name = (
            _vendor_name(obj.vendor_id, vendor_names, f"bill {obj.fb_id}")
            if "vendor_name" in sources
            else None
        )
        lines: Sequence[BillLine | None] = obj.lines or (None,)
        return _bill_rows(layout, obj, lines, vendor_name)
    return [_payment_row(layout, obj, sources, vendor_names, bills)]


def _vendor_name(vendor_id: int, vendor_names: Mapping[int, str] | None, what: str) -> str:
    name = vendor_names.get(vendor_id) if vendor_names is not None else None
    if name is None:
        raise RenderError(
            f"{what} names vendor {vendor_id}, whose name is not known; sync vendors first"
        )
    return name


def _payment_row(
    layout: OutgoingLayout,
    payment: BillPayment,
    sources: frozenset[str],
    vendor_names: Mapping[int, str] | None,
    bills: Mapping[int, Bill] | None,
) -> Row:
    looked_up: dict[str, object] = {}
    if sources & {"bill_number", "vendor_id", "vendor_name"}:
        bill = (bills or {}).get(payment.bill_id)
        if bill is None:
            raise RenderError(
                f"bill payment {payment.fb_id} is for bill {payment.bill_id}, which is not known"
            )
        looked_up = {"bill_number": bill.bill_number, "vendor_id": bill.vendor_id}
        if "vendor_name" in sources:
            looked_up["vendor_name"] = _vendor_name(
                bill.vendor_id, vendor_names, f"bill payment {payment.fb_id}"
            )
    return _row(
        layout,
        lambda source: looked_up[source] if source in looked_up else _unstamped(payment, source),
    )


def _unstamped(obj: SourceObject, source: str) -> object:
    """A field of the object; the action and version cells stay empty until a version is queued
    (`stampli.versions.stamp_rows`)."""
    return None if source in STAMPED_FIELDS else getattr(obj, source)


def _row(layout: OutgoingLayout, value_of: Callable[[str], object]) -> Row:
    return tuple(
        constant if formatter is None else formatter(value_of(source))
        for constant, source, formatter in _plan(layout)
    )


class TemplateRenderer:
    """The sync engine's `Renderer` (`sync/ports.py`), made of a validated Stampli template.

    The template file is read once, by `load`; everything after is data in, rows and bytes out.
    """

    def __init__(self, template: Template) -> None:
        self.template = template

    @classmethod
    def load(cls, path: Path | None) -> TemplateRenderer:
        return cls(load_template(path))

    def rows(
        self,
        obj: SourceObject,
        vendor_names: Mapping[int, str],
        bills: Mapping[int, Bill],
    ) -> list[tuple[str, ...]]:
        return [
            tuple(row)
            for row in render_rows(self.template, obj, vendor_names=vendor_names, bills=bills)
        ]

    def content_hash(self, rows: Sequence[tuple[str, ...]]) -> str:
        return content_hash(rows)

    def version_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        return versions.version_hash(self.template, kind, rows)

    def legacy_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        return versions.legacy_hash(self.template, kind, rows)

    def stamp(
        self, kind: Kind, rows: Sequence[tuple[str, ...]], *, action: str, version: int
    ) -> tuple[tuple[str, ...], ...]:
        return versions.stamp_rows(self.template, kind, rows, action=action, version=version)

    @property
    def resends_on_rename(self) -> bool:
        return self.template.resend_on_rename

    @property
    def zip_limit(self) -> int | None:
        return self.template.zip_limit

    def file_bytes(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> bytes:
        return render_file(self.template, kind, rows)

    def file_name(self, kind: Kind, *, business: str, created_at: datetime, batch_id: int) -> str:
        return file_name(
            self.template, business=business, created_at=created_at, batch_id=batch_id, kind=kind
        )
