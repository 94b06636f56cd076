"""Reads Stampli export files (CSV or XML) into `StampliRecord`s, as a stream.

Pure: it reads only the binary stream it is given, one buffer at a time, so a file of any size
is parsed in bounded memory. A malformed file raises `ExportParseError` naming the file, line
and column; no other exception escapes for bad content. XML is parsed with defusedxml and any
DTD (hence any entity expansion) is refused.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError

from fbstampli.errors import ExportParseError
from fbstampli.models import ExportKind, StampliRecord
from fbstampli.stampli.template import ISO, ExportColumn, ExportLayout, FieldType, Template

_CHUNK = 64 * 1024
MAX_LINE_BYTES = 8 * 1024 * 1024
# Python's csv module refuses fields above 128 KiB; XML values get the same bound.
MAX_VALUE_CHARS = 128 * 1024
# What one row (CSV or XML) may hold, whatever its shape: a hostile export with 500k header
# columns, or one 86 MB XML row of many fields, is refused rather than held in memory whole.
MAX_ROW_COLUMNS = 1000
MAX_ROW_CHARS = 4 * 1024 * 1024
_AMOUNT = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_INTEGER = re.compile(r"^\d+$")
_NOT_WORD = re.compile(r"[\W_]+")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")


def normalise_status(text: str) -> str:
    """`Pending Approval` -> `pending_approval`; unknown statuses are kept, only normalised."""
    return _NOT_WORD.sub("_", text.strip().casefold()).strip("_")


def _header_key(header: str) -> str:
    return header.strip().casefold()


def detect_export_kind(template: Template, file_name: str) -> ExportKind | None:
    """Which export a file is, by its name; `None` for temporary names and our own uploads."""
    if file_name.startswith(".") or file_name.endswith(".part"):
        return None
    lowered = file_name.casefold()
    own_uploads = _PLACEHOLDER.sub("*", template.file_name).casefold()
    if fnmatch.fnmatchcase(lowered, own_uploads):
        return None
    for layout in template.exports:
        if any(fnmatch.fnmatchcase(lowered, pattern.casefold()) for pattern in layout.match):
            return layout.kind
    return None


def parse_export(
    template: Template,
    file_name: str,
    stream: IO[bytes],
    *,
    kind: ExportKind | None = None,
) -> Iterator[StampliRecord]:
    """Yield one record per data row of an export file, in file order.

    `kind` defaults to what `detect_export_kind` says about `file_name`. Rows are yielded as
    they are read, so a consumer that stops early reads no further.
    """
    export_kind = kind or detect_export_kind(template, file_name)
    layout = template.export_layout(export_kind) if export_kind else None
    if layout is None:
        raise ExportParseError(file_name, 0, None, "the template describes no export of this name")
    if layout.file.format == "xml":
        return _parse_xml(layout, file_name, stream)
    return _parse_csv(layout, file_name, stream)


def _parse_value(
    column: ExportColumn, text: str, layout: ExportLayout, file_name: str, line: int
) -> object:
    """Turn one cell into the field's type; an empty cell is the field's empty value."""
    field_type = column.type
    if field_type in (FieldType.TEXT, FieldType.PHONE):
        return text
    if field_type is FieldType.STATUS:
        return normalise_status(text)
    value = text.strip()
    if not value:
        return None
    try:
        if field_type in (FieldType.ID, FieldType.INTEGER):
            if not _INTEGER.match(value):
                raise ValueError("not a whole number")
            number = int(value)
            if not -(2**63) <= number < 2**63:  # what SQLite can store; no FreshBooks id is near
                raise ValueError("too large for an id")
            return number
        if field_type in (FieldType.AMOUNT, FieldType.DECIMAL):
            if layout.file.decimal_separator == ",":
                value = value.replace(",", ".")
            if not _AMOUNT.match(value):
                raise ValueError("not a plain decimal amount")
            return Decimal(value)
        if field_type is FieldType.DATE:
            pattern = column.format or layout.file.date_format
            if pattern == ISO:
                return date.fromisoformat(value)
            return datetime.strptime(value, pattern).date()  # noqa: DTZ007 - a date has no zone
        if field_type is FieldType.DATETIME:
            pattern = column.format or layout.file.datetime_format
            if pattern == ISO:
                moment = datetime.fromisoformat(value)
            else:
                moment = datetime.strptime(value, pattern)  # noqa: DTZ007 - zone handled below
            # A time without a zone is taken as UTC: Stampli's exports are agreed in UTC.
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, InvalidOperation, OverflowError) as error:
        raise ExportParseError(
            file_name, line, column.header, f"bad {field_type} {_preview(value)}: {error}"
        ) from None
    raise ExportParseError(file_name, line, column.header, f"unsupported type {field_type}")


def _preview(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _record(
    layout: ExportLayout,
    file_name: str,
    line: int,
    values: Mapping[str, str],
    extra: dict[str, str],
) -> StampliRecord:
    """Build one record from cells keyed by the template's normalised header names."""
    fields: dict[str, Any] = {}
    for column in layout.columns:
        text = values.get(_header_key(column.header))
        if text is None or not text.strip():
            if column.required:
                reason = "missing value in a required column"
                raise ExportParseError(file_name, line, column.header, reason)
            if text is None:
                continue
        parsed = _parse_value(column, text, layout, file_name, line)
        if parsed is not None:
            fields[column.field] = parsed
    return StampliRecord(
        export_kind=layout.kind,
        stampli_invoice_id=str(fields.pop("stampli_invoice_id", "")),
        fb_bill_id=fields.pop("fb_bill_id", None),
        source_file=file_name,
        source_line=line,
        extra=extra,
        **fields,
    )


def _text_encoding(layout: ExportLayout) -> str:
    # utf-8-sig reads plain UTF-8 too, and drops a BOM some exporters add.
    encoding = layout.file.encoding
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _decoded_lines(
    stream: IO[bytes], layout: ExportLayout, file_name: str, max_line: int
) -> Iterator[str]:
    """Physical lines of the file as text, decoded one at a time.

    Decoding per line (rather than through a buffered text wrapper) lets a bad byte be reported
    on its own line, and bounds memory by the longest line. Templates only allow encodings in
    which a newline is the byte 0x0A, so splitting on it before decoding is safe.
    """
    encoding = layout.file.encoding
    decoder = codecs.getincrementaldecoder(_text_encoding(layout))(errors="strict")
    line = 0
    while raw := stream.readline(max_line + 1):
        line += 1
        if len(raw) > max_line:
            raise ExportParseError(file_name, line, None, f"line longer than {max_line} bytes")
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError as error:
            reason = f"not valid {encoding} text (byte {error.start + 1} of the line)"
            raise ExportParseError(file_name, line, None, reason) from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        reason = f"not valid {encoding} text at the end"
        raise ExportParseError(file_name, line, None, reason) from None


def _check_width(file_name: str, line: int, columns: int) -> None:
    if columns > MAX_ROW_COLUMNS:
        raise ExportParseError(file_name, line, None, f"more than {MAX_ROW_COLUMNS} columns")


class _RowBudget:
    """The decoded lines handed to `csv.reader`, counted per row: a quoted field may run over
    many lines, and the reader holds a row whole, so the row (not the line) is what is capped."""

    def __init__(self, lines: Iterator[str], file_name: str) -> None:
        self._lines = lines
        self._file_name = file_name
        self._used = 0
        self._line = 1

    def new_row(self, line: int) -> None:
        self._used, self._line = 0, line

    def __iter__(self) -> _RowBudget:
        return self

    def __next__(self) -> str:
        text = next(self._lines)
        self._used += len(text)
        if self._used > MAX_ROW_CHARS:
            reason = f"row longer than {MAX_ROW_CHARS} characters"
            raise ExportParseError(self._file_name, self._line, None, reason)
        return text


def _parse_csv(layout: ExportLayout, file_name: str, stream: IO[bytes]) -> Iterator[StampliRecord]:
    counted = _RowBudget(_decoded_lines(stream, layout, file_name, MAX_LINE_BYTES), file_name)
    reader = csv.reader(counted, delimiter=layout.file.delimiter, strict=True)
    line = 1
    try:
        header = _read_header(layout, reader, file_name)
        wanted = {_header_key(c.header) for c in layout.columns}
        names = header or [c.header for c in layout.columns]
        keys = [_header_key(name) for name in names]
        while True:
            line = reader.line_num + 1
            counted.new_row(line)
            try:
                row = next(reader)
            except StopIteration:
                return
            if not row:
                continue
            _check_width(file_name, line, len(row))
            if header is not None and len(row) != len(names):
                raise ExportParseError(
                    file_name,
                    line,
                    None,
                    f"ragged row: {len(row)} fields where the header has {len(names)}",
                )
            if header is None and len(row) < len(names):
                raise ExportParseError(
                    file_name,
                    line,
                    None,
                    f"short row: {len(row)} fields where the template has {len(names)}",
                )
            values: dict[str, str] = {}
            extra: dict[str, str] = {}
            for index, cell in enumerate(row):
                key = keys[index] if index < len(keys) else ""
                if key in wanted and key not in values:
                    values[key] = cell
                else:
                    extra[names[index] if index < len(names) else f"column {index + 1}"] = cell
            yield _record(layout, file_name, line, values, extra)
    except csv.Error as error:
        raise ExportParseError(file_name, max(line, reader.line_num), None, str(error)) from None


def _read_header(
    layout: ExportLayout, reader: Iterator[list[str]], file_name: str
) -> list[str] | None:
    """The file's header row, checked for the required columns; `None` when there is none."""
    if not layout.file.header:
        return None
    for row in reader:
        if not row:
            continue
        _check_width(file_name, 1, len(row))
        keys = [_header_key(cell) for cell in row]
        present = set(keys)
        for column in layout.columns:
            key = _header_key(column.header)
            if column.required and key not in present:
                raise ExportParseError(file_name, 1, column.header, "missing required column")
            if keys.count(key) > 1:  # which of the two holds the value cannot be known
                raise ExportParseError(file_name, 1, column.header, "column appears twice")
        return row
    raise ExportParseError(file_name, 1, None, "empty file: no header row")


class _RowCollector:
    """ElementTree parser target that keeps only finished rows, never the whole tree."""

    def __init__(self, layout: ExportLayout, file_name: str) -> None:
        self.layout = layout
        self.file_name = file_name
        self.expat: Any = None  # set once the parser exists, for line numbers
        self.wanted = {_header_key(c.header) for c in layout.columns}
        self.depth = 0
        self.row_line = 0
        self.field: str | None = None
        self.chunks: list[str] = []
        self.size = 0
        self.values: dict[str, str] = {}
        self.extra: dict[str, str] = {}
        self.ready: list[StampliRecord] = []
        self.in_row = False
        self.row_fields = 0  # fields and characters of the row being read, capped
        self.row_size = 0

    def _line(self) -> int:
        return int(self.expat.CurrentLineNumber) if self.expat is not None else 0

    def start(self, tag: str, attrib: Mapping[str, str]) -> None:
        self.depth += 1
        if self.depth == 2:
            self.in_row = tag == self.layout.file.xml_row
            self.row_line = self._line()
            self.values, self.extra = {}, {}
            self.row_fields, self.row_size = 0, 0
        elif self.depth == 3 and self.in_row:
            self.field = tag
            self.chunks, self.size = [], 0
            self.row_fields += 1
            _check_width(self.file_name, self._line(), self.row_fields)

    def data(self, text: str) -> None:
        if self.depth == 3 and self.field is not None:
            self.size += len(text)
            self.row_size += len(text)
            if self.row_size > MAX_ROW_CHARS:
                reason = f"row longer than {MAX_ROW_CHARS} characters"
                raise ExportParseError(self.file_name, self._line(), None, reason)
            if self.size > MAX_VALUE_CHARS:
                raise ExportParseError(
                    self.file_name,
                    self._line(),
                    self.field,
                    f"value longer than {MAX_VALUE_CHARS} characters",
                )
            self.chunks.append(text)

    def end(self, tag: str) -> None:
        if self.depth == 3 and self.field is not None:
            key = _header_key(self.field)
            value = "".join(self.chunks)
            if key in self.wanted and key not in self.values:
                self.values[key] = value
            else:
                self.extra[self.field] = value
            self.field = None
        elif self.depth == 2 and self.in_row:
            self.ready.append(
                _record(self.layout, self.file_name, self.row_line, self.values, self.extra)
            )
            self.in_row = False
        self.depth -= 1

    def close(self) -> None:
        return None


def _parse_xml(layout: ExportLayout, file_name: str, stream: IO[bytes]) -> Iterator[StampliRecord]:
    collector = _RowCollector(layout, file_name)
    parser = DefusedXMLParser(target=collector, forbid_dtd=True)
    collector.expat = parser.parser
    try:
        while chunk := stream.read(_CHUNK):
            parser.feed(chunk)
            yield from collector.ready
            collector.ready.clear()
        parser.close()
        yield from collector.ready
    except ParseError as error:
        line = error.position[0] if error.position else collector._line()
        raise ExportParseError(file_name, line, None, f"XML error: {error}") from None
    except DefusedXmlException as error:
        reason = f"XML with a DTD or entities is refused ({type(error).__name__})"
        raise ExportParseError(file_name, collector._line(), None, reason) from None
    except (ValueError, LookupError) as error:  # e.g. encoding="UTF-7": expat cannot read it
        reason = f"XML the parser cannot read ({error})"
        raise ExportParseError(file_name, collector._line(), None, reason) from None
