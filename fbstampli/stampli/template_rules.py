"""The rules a template file must follow, checked all at once into a list of problems.

Every problem names its dotted path (`bill column 3 ('Vendor') format`), so one
`TemplateError` can list them all; `build` returns the `Template` when none was found.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Iterable
from typing import Any

from fbstampli.models import ExportKind, Kind
from fbstampli.stampli.layouts import (
    ACTIONS,
    DEFAULT_ACTION_WORDS,
    DEFAULT_CATEGORY_COLUMNS,
    DEFAULT_TAX_COLUMNS,
    FILE_NAME_FIELDS,
    ISO,
    LINE_ENDINGS,
    RECORD_FIELDS,
    SECTION_OF_KIND,
    SOURCE_FIELDS,
    XML_NAME,
    Column,
    ExportColumn,
    ExportLayout,
    FieldType,
    FileFormat,
    OutgoingLayout,
    Template,
)


def _at(path: str, key: str) -> str:
    """`bill.format` for a section's key, `bill column 3 ('Vendor') format` for a column's."""
    return f"{path} {key}" if " column " in path else f"{path}.{key}"


def _unknown_keys(table: dict[str, Any], allowed: set[str], path: str, problems: list[str]) -> None:
    for key in table:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            problems.append(
                f"{_at(path, key)}: unknown key{hint}" if path else f"{key}: unknown key"
            )


def _text(table: dict[str, Any], key: str, path: str, problems: list[str], default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        problems.append(f"{_at(path, key)}: must be text")
        return default
    return value


def _flag(table: dict[str, Any], key: str, path: str, problems: list[str], default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{path}.{key}: must be true or false")
        return default
    return value


_FORMAT_KEYS = set(FileFormat.__dataclass_fields__)


def _encoding(table: dict[str, Any], base: FileFormat, path: str, problems: list[str]) -> str:
    encoding = _text(table, "encoding", path, problems, base.encoding)
    try:
        # Lines are split on the newline byte before decoding, so the encoding must keep it.
        ascii_compatible = "a,\n".encode(encoding).endswith(b"a,\n")
    except LookupError:
        problems.append(f"{path}.encoding: unknown encoding {encoding!r}")
        return base.encoding
    if not ascii_compatible:
        problems.append(f"{path}.encoding: {encoding!r} is not ASCII-compatible")
        return base.encoding
    return encoding


def _line_ending(table: dict[str, Any], base: FileFormat, path: str, problems: list[str]) -> str:
    if "line_ending" not in table:
        return base.line_ending
    ending_name = _text(table, "line_ending", path, problems, "crlf")
    if ending_name.lower() not in LINE_ENDINGS:
        problems.append(f"{path}.line_ending: must be 'crlf' or 'lf'")
        return base.line_ending
    return LINE_ENDINGS[ending_name.lower()]


def _file_format(table: object, base: FileFormat, path: str, problems: list[str]) -> FileFormat:
    """Overlay a `format` table on `base`: the top-level one on defaults, a section's on that."""
    if table is None:
        return base
    if not isinstance(table, dict):
        problems.append(f"{path}: must be a table")
        return base
    _unknown_keys(table, _FORMAT_KEYS, path, problems)
    kind = _text(table, "format", path, problems, base.format)
    if kind not in ("csv", "xml"):
        problems.append(f"{path}.format: must be 'csv' or 'xml', not {kind!r}")
        kind = base.format
    encoding = _encoding(table, base, path, problems)
    delimiter = _text(table, "delimiter", path, problems, base.delimiter)
    if len(delimiter) != 1 or delimiter in '\r\n"':
        problems.append(f"{path}.delimiter: must be one character other than a quote or newline")
        delimiter = base.delimiter
    line_ending = _line_ending(table, base, path, problems)
    separator = _text(table, "decimal_separator", path, problems, base.decimal_separator)
    if separator not in (".", ","):
        problems.append(f"{path}.decimal_separator: must be '.' or ','")
        separator = base.decimal_separator
    elif separator == delimiter == ",":
        problems.append(f"{path}.decimal_separator: ',' cannot also be the delimiter")
    date_format = _text(table, "date_format", path, problems, base.date_format)
    datetime_format = _text(table, "datetime_format", path, problems, base.datetime_format)
    for key, pattern in (("date_format", date_format), ("datetime_format", datetime_format)):
        if pattern != ISO and "%" not in pattern:
            problems.append(f"{path}.{key}: must be 'iso' or a strftime pattern such as '%m/%d/%Y'")
    xml_root = _text(table, "xml_root", path, problems, base.xml_root)
    xml_row = _text(table, "xml_row", path, problems, base.xml_row)
    for key, name in (("xml_root", xml_root), ("xml_row", xml_row)):
        if not XML_NAME.match(name):
            problems.append(f"{path}.{key}: {name!r} is not a valid XML element name")
    return FileFormat(
        format=kind,
        encoding=encoding,
        delimiter=delimiter,
        line_ending=line_ending,
        header=_flag(table, "header", path, problems, base.header),
        quote_all=_flag(table, "quote_all", path, problems, base.quote_all),
        date_format=date_format,
        datetime_format=datetime_format,
        decimal_separator=separator,
        xml_root=xml_root,
        xml_row=xml_row,
        formula_guard=_flag(table, "formula_guard", path, problems, base.formula_guard),
    )


def _check_column_format(
    field_type: FieldType, column_format: str, path: str, problems: list[str]
) -> None:
    if not column_format:
        return
    if field_type in (FieldType.DATE, FieldType.DATETIME):
        if column_format != ISO and "%" not in column_format:
            problems.append(f"{_at(path, 'format')}: must be 'iso' or a strftime pattern")
    elif field_type is FieldType.BOOL:
        parts = column_format.split("|")
        if len(parts) != 2 or parts[0] == parts[1]:
            problems.append(f"{_at(path, 'format')}: must be 'true-text|false-text', e.g. 'yes|no'")
    else:
        problems.append(f"{_at(path, 'format')}: a {field_type} column takes no format")


def column_where(path: str, index: int, table: object) -> str:
    """A column as people find it in the file: 1-based, with its header when it has one."""
    header = table.get("header") if isinstance(table, dict) else None
    named = f" ({header!r})" if isinstance(header, str) and header.strip() else ""
    return f"{path} column {index + 1}{named}"


def did_you_mean(wrong: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(wrong, sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_headers(
    headers: list[str], file_format: FileFormat, path: str, problems: list[str]
) -> None:
    seen: set[str] = set()
    for index, header in enumerate(headers):
        where = f"{path} column {index + 1} header"
        if not header.strip():
            problems.append(f"{where}: must not be empty")
        if header.strip().casefold() in seen:
            problems.append(f"{where}: duplicate header {header!r}")
        seen.add(header.strip().casefold())
        if file_format.format == "xml" and not XML_NAME.match(header):
            problems.append(f"{where}: {header!r} is not a valid XML element name (format is xml)")


def _columns_list(section: dict[str, Any], path: str, problems: list[str]) -> list[dict[str, Any]]:
    columns = section.get("columns")
    if not isinstance(columns, list) or not columns:
        problems.append(f"{path}.columns: must be a non-empty list of column tables")
        return []
    tables: list[dict[str, Any]] = []
    for index, column in enumerate(columns):
        if not isinstance(column, dict):
            problems.append(f"{path} column {index + 1}: must be a table")
            continue
        tables.append(column)
    return tables if len(tables) == len(columns) else []


def _outgoing(
    kind: Kind, data: dict[str, Any], base: FileFormat, problems: list[str]
) -> OutgoingLayout | None:
    path = SECTION_OF_KIND[kind]
    section = data.get(path)
    if not isinstance(section, dict):
        problems.append(f"{path}: missing table [{path}]")
        return None
    _unknown_keys(section, {"columns", "format"}, path, problems)
    file_format = _file_format(section.get("format"), base, f"{path}.format", problems)
    known = SOURCE_FIELDS[kind]
    columns: list[Column] = []
    for index, table in enumerate(_columns_list(section, path, problems)):
        where = column_where(path, index, table)
        _unknown_keys(table, {"header", "source", "format", "value"}, where, problems)
        header = _text(table, "header", where, problems, "")
        source = _text(table, "source", where, problems, "")
        value = _text(table, "value", where, problems, "")
        column_format = _text(table, "format", where, problems, "")
        if "source" in table and "value" in table:
            problems.append(f"{where}: give either source or value, not both")
            continue
        if "source" not in table and "value" not in table:
            problems.append(f"{where} source: missing (or give a constant value)")
            continue
        if "value" in table:
            field_type = FieldType.TEXT
        elif source not in known:
            problems.append(
                f"{where} source: unknown field {source!r}{did_you_mean(source, known)}"
            )
            continue
        else:
            field_type = known[source]
        _check_column_format(field_type, column_format, where, problems)
        columns.append(Column(header, source, field_type, column_format, value))
    _check_headers([c.header for c in columns], file_format, path, problems)
    return OutgoingLayout(kind, file_format, tuple(columns))


def _export(
    kind: ExportKind, section: object, base: FileFormat, problems: list[str]
) -> ExportLayout | None:
    path = f"exports.{kind.value}"
    if not isinstance(section, dict):
        problems.append(f"{path}: must be a table")
        return None
    _unknown_keys(section, {"columns", "format", "match"}, path, problems)
    file_format = _file_format(section.get("format"), base, f"{path}.format", problems)
    raw_match = section.get("match")
    patterns: tuple[str, ...] = ()
    if isinstance(raw_match, str):
        patterns = (raw_match,)
    elif isinstance(raw_match, list) and all(isinstance(p, str) for p in raw_match):
        patterns = tuple(raw_match)
    if not patterns or not all(patterns):
        problems.append(f"{path}.match: must be a file-name glob or a list of them")
    columns: list[ExportColumn] = []
    mapped: set[str] = set()
    for index, table in enumerate(_columns_list(section, path, problems)):
        where = column_where(path, index, table)
        _unknown_keys(table, {"header", "field", "format", "required"}, where, problems)
        header = _text(table, "header", where, problems, "")
        field_name = _text(table, "field", where, problems, "")
        if field_name not in RECORD_FIELDS:
            problems.append(
                f"{where} field: unknown field {field_name!r}"
                f"{did_you_mean(field_name, RECORD_FIELDS)}"
            )
            continue
        if field_name in mapped:
            problems.append(f"{where} field: {field_name!r} is already mapped by another column")
        mapped.add(field_name)
        field_type = RECORD_FIELDS[field_name]
        column_format = _text(table, "format", where, problems, "")
        _check_column_format(field_type, column_format, where, problems)
        required = _flag(table, "required", where, problems, field_name == "stampli_invoice_id")
        columns.append(ExportColumn(header, field_name, field_type, column_format, required))
    if columns and "stampli_invoice_id" not in mapped:
        problems.append(f"{path}.columns: no column maps field 'stampli_invoice_id'")
    _check_headers([c.header for c in columns], file_format, path, problems)
    return ExportLayout(kind, patterns, file_format, tuple(columns))


def _check_file_name(pattern: str, problems: list[str]) -> None:
    where = "template.file_name"
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    except ValueError as error:
        problems.append(f"{where}: {error}")
        return
    unknown = names - FILE_NAME_FIELDS
    if unknown:
        problems.append(f"{where}: unknown placeholder(s) {sorted(unknown)}")
    for needed in ("timestamp", "batch"):
        if needed not in names:
            problems.append(f"{where}: must contain {{{needed}}} so that names never repeat")
    if not names & {"seq", "kind", "kinds"}:
        problems.append(f"{where}: must contain {{seq}} or {{kind}} to tell a batch's files apart")
    if pattern.startswith(".") or pattern.endswith(".part"):
        problems.append(f"{where}: must not start with '.' nor end in '.part' (temporary names)")
    if "/" in pattern or "\\" in pattern:
        problems.append(f"{where}: must be a plain file name, without '/' or '\\'")


def _action_words(table: object, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """The `[actions]` table: the word the Action column shows for each action."""
    if not isinstance(table, dict):
        problems.append("actions: must be a table")
        return DEFAULT_ACTION_WORDS
    _unknown_keys(table, set(ACTIONS), "actions", problems)
    words = tuple(
        (action, _text(table, action, "actions", problems, default))
        for action, default in DEFAULT_ACTION_WORDS
    )
    if any(not word.strip() or word.startswith(("=", "+", "-", "@")) for _, word in words):
        problems.append("actions: a word must not be empty nor start with = + - @")
    return words


def build(data: dict[str, Any], problems: list[str], origin: str) -> Template | None:
    top_level = {"template", "format", "actions", "category", "tax", "vendor", "bill", "payment"}
    top_level.add("exports")
    _unknown_keys(data, top_level, "", problems)
    head = data.get("template", {})
    if not isinstance(head, dict):
        problems.append("template: must be a table")
        head = {}
    head_keys = {"name", "file_name", "resend_on_rename", "documents", "zip_max_mb"}
    _unknown_keys(head, head_keys, "template", problems)
    name = _text(head, "name", "template", problems, "unnamed")
    resend_on_rename = _flag(head, "resend_on_rename", "template", problems, False)
    documents, zip_max_mb = _documents_layout(head, problems)
    actions = _action_words(data.get("actions", {}), problems)
    file_name = _text(
        head,
        "file_name",
        "template",
        problems,
        "fbstampli_{business}_{timestamp}_{batch}_{seq}-{kinds}.csv",
    )
    _check_file_name(file_name, problems)
    if file_name.lower().endswith(".zip"):
        problems.append("template.file_name: must not end in '.zip' (the ZIP layout's names)")
    base = _file_format(data.get("format", {}), FileFormat(), "format", problems)
    category = _outgoing(Kind.CATEGORY, _with_default(data, base, Kind.CATEGORY), base, problems)
    tax = _outgoing(Kind.TAX, _with_default(data, base, Kind.TAX), base, problems)
    vendor = _outgoing(Kind.VENDOR, data, base, problems)
    bill = _outgoing(Kind.BILL, data, base, problems)
    payment = _outgoing(Kind.PAYMENT, data, base, problems)
    exports = _exports(data.get("exports", {}), base, problems)
    if vendor is None or bill is None or payment is None or category is None or tax is None:
        return None
    return Template(
        name,
        origin,
        file_name,
        vendor,
        bill,
        payment,
        exports,
        actions,
        resend_on_rename,
        documents,
        zip_max_mb,
        category,
        tax,
    )


def _exports(table: object, base: FileFormat, problems: list[str]) -> tuple[ExportLayout, ...]:
    """The `[exports.*]` layouts Stampli's files are read with, each known by its kind."""
    if not isinstance(table, dict):
        problems.append("exports: must be a table")
        return ()
    exports: list[ExportLayout] = []
    for key, section in table.items():
        try:
            export_kind = ExportKind(key)
        except ValueError:
            allowed = ", ".join(k.value for k in ExportKind)
            problems.append(f"exports.{key}: unknown export (expected one of {allowed})")
            continue
        layout = _export(export_kind, section, base, problems)
        if layout is not None:
            exports.append(layout)
    return tuple(exports)


def _documents_layout(head: dict[str, Any], problems: list[str]) -> tuple[str, int]:
    """`template.documents` ("files" or "zip") and `template.zip_max_mb` (whole MB)."""
    documents = _text(head, "documents", "template", problems, "files")
    if documents not in ("files", "zip"):
        problems.append(f"template.documents: must be 'files' or 'zip', not {documents!r}")
        documents = "files"
    zip_max_mb = head.get("zip_max_mb", 8)
    if isinstance(zip_max_mb, bool) or not isinstance(zip_max_mb, int):
        problems.append("template.zip_max_mb: must be a whole number of MB")
        zip_max_mb = 8
    elif not 1 <= zip_max_mb <= 10_000:
        problems.append("template.zip_max_mb: must be between 1 and 10000")
        zip_max_mb = 8
    return documents, zip_max_mb


def _with_default(data: dict[str, Any], base: FileFormat, kind: Kind) -> dict[str, Any]:
    """A template written before the coding lists existed sends them in the default's columns
    (in XML, headers made element names: `GL_Account_ID`)."""
    section = SECTION_OF_KIND[kind]
    if section in data:
        return data
    xml = base.format == "xml"
    columns = [
        {
            "header": header.replace(" ", "_") if xml else header,
            "source": source,
            **({"format": shown} if shown else {}),
        }
        for header, source, shown in (
            DEFAULT_CATEGORY_COLUMNS if kind is Kind.CATEGORY else DEFAULT_TAX_COLUMNS
        )
    ]
    return {**data, section: {"columns": columns}}
