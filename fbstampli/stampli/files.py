"""From rendered rows to a file: its bytes (CSV or XML), its content hash and its name.

Pure, like the rest of `stampli/`: the batch's creation time is passed in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from fbstampli.errors import RenderError
from fbstampli.models import Kind
from fbstampli.stampli.layouts import PLURAL_OF_KIND
from fbstampli.stampli.template import (
    SECTION_OF_KIND,
    SEQUENCE_OF_KIND,
    OutgoingLayout,
    Template,
)

_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_BUSINESS_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


def content_hash(rows: Iterable[Sequence[str]]) -> str:
    """sha256 hex of the rows in a canonical, length-prefixed UTF-8 encoding.

    Independent of template file settings (delimiter, quoting, line ending), of Python's
    `repr`/JSON details and of the platform, so the same rows hash the same forever.
    """
    parts: list[bytes] = []
    append = parts.append
    for row in rows:
        # An ASCII row's characters are its bytes: built as text and encoded once, it gives
        # the same bytes as cell by cell, for a fraction of the work.
        text = f"R{len(row)}:" + "".join([f"{len(cell)}:{cell}" for cell in row])
        if text.isascii():
            append(text.encode("ascii"))
            continue
        append(b"R%d:" % len(row))
        for cell in row:
            data = cell.encode("utf-8", "surrogatepass")
            append(b"%d:" % len(data))
            append(data)
    return hashlib.sha256(b"".join(parts)).hexdigest()  # one update: the same digest, faster


def render_file(template: Template, kind: Kind, rows: Iterable[Sequence[str]]) -> bytes:
    """The whole file for one kind: header row (if the template has one) and the given rows."""
    layout = template.layout(kind)
    file_format = layout.file
    rows = rows if isinstance(rows, Sequence) else list(rows)  # read again to name a column
    if file_format.format == "xml":
        text = _render_xml(layout, rows)
    else:
        buffer = io.StringIO()
        writer = csv.writer(
            buffer,
            delimiter=file_format.delimiter,
            lineterminator=file_format.line_ending,
            quoting=csv.QUOTE_ALL if file_format.quote_all else csv.QUOTE_MINIMAL,
            doublequote=True,
            strict=True,
        )
        if file_format.header:
            writer.writerow(layout.headers)
        for row in rows:
            _check_width(layout, row)
            writer.writerow(row)
        text = buffer.getvalue()
    try:
        return text.encode(file_format.encoding)
    except UnicodeEncodeError as error:
        bad = error.object[error.start : error.end]
        raise RenderError(
            f"{SECTION_OF_KIND[kind]} file{_column_of(layout, rows, file_format.encoding)}: "
            f"{bad!r} cannot be written in {file_format.encoding}"
        ) from None


def _column_of(layout: OutgoingLayout, rows: Iterable[Sequence[str]], encoding: str) -> str:
    """`, column "Name"`: the first column holding what `encoding` cannot write."""
    for row in rows:
        for header, cell in zip(layout.headers, row, strict=False):
            try:
                cell.encode(encoding)
            except UnicodeEncodeError:
                return f", column {header!r}"
    return ""


def _check_width(layout: OutgoingLayout, row: Sequence[str]) -> None:
    if len(row) != len(layout.columns):
        raise RenderError(
            f"{SECTION_OF_KIND[layout.kind]} row has {len(row)} cells, the template has "
            f"{len(layout.columns)} columns; re-render it with this template"
        )


def _xml_text(text: str) -> str:
    if _XML_FORBIDDEN.search(text):
        raise RenderError("a value holds a control character that XML 1.0 cannot carry")
    # A raw CR would be read back as LF; a character reference survives.
    return escape(text).replace("\r", "&#13;")


def _render_xml(layout: OutgoingLayout, rows: Iterable[Sequence[str]]) -> str:
    file_format = layout.file
    end = file_format.line_ending
    parts = [f'<?xml version="1.0" encoding="{file_format.encoding}"?>{end}']
    parts.append(f"<{file_format.xml_root}>{end}")
    for row in rows:
        _check_width(layout, row)
        parts.append(f"  <{file_format.xml_row}>{end}")
        for header, cell in zip(layout.headers, row, strict=True):
            parts.append(f"    <{header}>{_xml_text(cell)}</{header}>{end}")
        parts.append(f"  </{file_format.xml_row}>{end}")
    parts.append(f"</{file_format.xml_root}>{end}")
    return "".join(parts)


def file_name(
    template: Template,
    *,
    business: str,
    created_at: datetime,
    batch_id: int,
    kind: Kind,
) -> str:
    """The final remote name of one file of a batch.

    Unique per (batch, kind); `seq` is 0 for expense categories, 1 for vendors, 2 for bills,
    3 for payments, so that a consumer processing in name order sees masters first.
    `business` is reduced to letters, digits and `-`. Never starts with `.` nor ends in
    `.part` (our temporary names).
    """
    if created_at.tzinfo is None:
        raise ValueError("created_at must be an aware datetime")
    safe_business = _BUSINESS_UNSAFE.sub("-", business).strip("-") or "business"
    name = template.file_name.format(
        business=safe_business,
        timestamp=created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
        batch=f"b{batch_id:06d}",
        seq=SEQUENCE_OF_KIND[kind],
        kind=SECTION_OF_KIND[kind],
        kinds=PLURAL_OF_KIND[kind],
    )
    if name.startswith(".") or name.endswith(".part") or "/" in name or "\\" in name:
        raise RenderError(f"file name {name!r} is not usable; fix template.file_name")
    return name
