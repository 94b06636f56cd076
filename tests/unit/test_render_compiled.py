"""Columns compiled once per template write every cell as the per-cell code did.

`reference` below is the per-cell formatter as it was before columns were
compiled (issue 17): the content hash of every object already sent depends on
these bytes, so they must never change.
"""

import hashlib
import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fbstampli.errors import RenderError
from fbstampli.models import VisState
from fbstampli.stampli.render import (
    _SAFE_PHONE,
    ISO,
    _formatter,
    content_hash,
    format_decimal,
    neutralise_formula,
)
from fbstampli.stampli.template import Column, FieldType, FileFormat


def reference(value: object, column: Column, file_format: FileFormat) -> str:
    if value is None:
        return ""
    field_type = column.type
    if field_type in (FieldType.AMOUNT, FieldType.DECIMAL):
        if not isinstance(value, Decimal):
            raise RenderError(f"column {column.header!r}: {type(value).__name__} is not a Decimal")
        return format_decimal(value, file_format.decimal_separator)
    if field_type is FieldType.DATETIME and isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        pattern = column.format or file_format.datetime_format
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ" if pattern == ISO else pattern)
    if field_type is FieldType.DATE and isinstance(value, date):
        pattern = column.format or file_format.date_format
        return value.isoformat() if pattern == ISO else value.strftime(pattern)
    if field_type is FieldType.BOOL:
        yes, no = (column.format or "true|false").split("|")
        return yes if value else no
    if field_type in (FieldType.ID, FieldType.INTEGER):
        return str(int(str(value)))
    text = value.name.lower() if isinstance(value, VisState) else str(value)
    if not file_format.formula_guard:
        return text
    if field_type is FieldType.PHONE and _SAFE_PHONE.match(text):
        return text
    return neutralise_formula(text)


VALUES: list[object] = [
    None,
    "",
    "plain",
    "=SUM(A1)",
    "+1 (555) 010-0199",
    "-5",
    "@x",
    "\tx",
    0,
    7,
    "42",
    True,
    False,
    Decimal("0"),
    Decimal("-12.50"),
    Decimal("1E+3"),
    Decimal("0.000001"),
    date(2026, 1, 31),
    datetime(2026, 1, 31, 23, 59, 58),  # noqa: DTZ001 - a naive time is a case of its own
    datetime(2026, 1, 31, 23, 59, 58, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2026, 6, 1, tzinfo=UTC),
    VisState.ACTIVE,
    VisState.DELETED,
]
COLUMNS = [
    Column("h", "s", field_type, fmt)
    for field_type in FieldType
    for fmt in ("", "%d/%m/%Y", "yes|no")
]
FORMATS = [
    FileFormat(),
    FileFormat(formula_guard=True),
    FileFormat(decimal_separator=",", date_format="%m/%d/%Y", datetime_format="%Y%m%d %H%M"),
]


def outcome(write: object, value: object) -> object:
    try:
        return write(value)  # type: ignore[operator]
    except (RenderError, ValueError, TypeError) as error:
        return (type(error), str(error))


@pytest.mark.parametrize(("column", "file_format"), list(itertools.product(COLUMNS, FORMATS)))
def test_a_compiled_column_writes_every_value_as_the_per_cell_formatter_did(
    column: Column, file_format: FileFormat
) -> None:
    compiled = _formatter(column, file_format)
    for value in VALUES:
        expected = outcome(lambda v: reference(v, column, file_format), value)
        assert outcome(compiled, value) == expected, (column, value)


def reference_hash(rows: list[tuple[str, ...]]) -> str:
    """The content hash as it was computed cell by cell before issue 17."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(b"R%d:" % len(row))
        for cell in row:
            data = cell.encode("utf-8", "surrogatepass")
            digest.update(b"%d:" % len(data))
            digest.update(data)
    return digest.hexdigest()


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [()],
        [("",)],
        [("42", "Acme, Inc", "113.00")],
        [("42", "Zoë\r\n", "-1"), ("7", "plain")],
        [("\ud800 lone surrogate", "x")],
        [("日本", "12:3"), ("12", ":3")],
        [("a" * 1000,)] * 3,
    ],
)
def test_the_content_hash_is_the_cell_by_cell_one(rows: list[tuple[str, ...]]) -> None:
    assert content_hash(rows) == reference_hash(rows)
