"""The journal of Stampli's export files and the records read from them.

One row per remote file version (name, size, mtime), moved through

    downloading -> downloaded -> processed | quarantined | duplicate

by `sync/pull.py`. Queries only: the caller owns each transaction, so a row
is committed before the download or move it announces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from fbstampli.models import ExportKind, Kind, StampliRecord
from fbstampli.store import Row, Store


class FileState(StrEnum):
    DOWNLOADING = "downloading"  # committed before a byte is read; a local copy is whole or absent
    DOWNLOADED = "downloaded"
    PROCESSED = "processed"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


DONE_STATES = (FileState.PROCESSED, FileState.QUARANTINED, FileState.DUPLICATE)


@dataclass(frozen=True, slots=True)
class FileRow:
    """The journal row of one remote file version (one identity: name, size, mtime)."""

    id: int
    name: str
    state: FileState
    sha256: str
    local: Path | None


def _file_row(row: Row) -> FileRow:
    local = row["local_path"]
    return FileRow(
        int(row["id"]),
        str(row["name"]),
        FileState(row["state"]),
        str(row["sha256"]),
        Path(local) if local else None,
    )


def find_file(store: Store, name: str, size: int | None, mtime: str | None) -> FileRow | None:
    """The newest row of this identity, if the file was met before."""
    row = store.query_one(
        "SELECT * FROM stampli_files WHERE name = ? AND size IS ? AND mtime IS ? "
        "ORDER BY id DESC LIMIT 1",
        (name, size, mtime),
    )
    return None if row is None else _file_row(row)


def add_file(
    store: Store, name: str, size: int | None, mtime: str | None, export_kind: ExportKind
) -> int:
    """A new `downloading` row; `set_local_path` names its copy in the same transaction."""
    return store.execute(
        "INSERT INTO stampli_files (name, size, mtime, sha256, export_kind, state, "
        "downloaded_at) VALUES (?, ?, ?, '', ?, ?, ?)",
        (name, size, mtime, export_kind.value, FileState.DOWNLOADING, store.now_text()),
    )


def set_local_path(store: Store, file_id: int, local: Path) -> None:
    store.execute("UPDATE stampli_files SET local_path = ? WHERE id = ?", (str(local), file_id))


def mark_downloaded(store: Store, file_id: int, sha256: str, size: int) -> None:
    store.execute(
        "UPDATE stampli_files SET state = ?, sha256 = ?, size = coalesce(size, ?), "
        "downloaded_at = ? WHERE id = ?",
        (FileState.DOWNLOADED, sha256, size, store.now_text(), file_id),
    )


def mark_processed(store: Store, file_id: int, records: int) -> None:
    store.execute(
        "UPDATE stampli_files SET state = ?, records = ?, processed_at = ? WHERE id = ?",
        (FileState.PROCESSED, records, store.now_text(), file_id),
    )


def mark_quarantined(store: Store, file_id: int, reason: str, local: Path | None) -> None:
    store.execute(
        "UPDATE stampli_files SET state = ?, reason = ?, local_path = ?, processed_at = ? "
        "WHERE id = ?",
        (FileState.QUARANTINED, reason, str(local) if local else None, store.now_text(), file_id),
    )


def mark_duplicate(store: Store, file_id: int, reason: str) -> None:
    store.execute(
        "UPDATE stampli_files SET state = ?, reason = ?, local_path = NULL, processed_at = ? "
        "WHERE id = ?",
        (FileState.DUPLICATE, reason, store.now_text(), file_id),
    )


def processed_with_hash(store: Store, sha256: str, other_than: int) -> str | None:
    """The name of another file already processed with these exact bytes, if any."""
    row = store.query_one(
        "SELECT name FROM stampli_files WHERE sha256 = ? AND state = ? AND id != ?",
        (sha256, FileState.PROCESSED, other_than),
    )
    return None if row is None else str(row["name"])


def add_records(store: Store, rows: Sequence[tuple[Any, ...]]) -> None:
    """(file_id, line, export_kind, stampli_invoice_id, fb_bill_id, status, payload) rows."""
    store.execute_many(
        "INSERT INTO stampli_records (file_id, line, export_kind, stampli_invoice_id, fb_bill_id, "
        "status, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
        list(rows),
    )


def vendor_name_rows(store: Store) -> Iterator[tuple[int, str]]:
    """(vendor id, name) of every snapshotted vendor, streamed."""
    for row in store.iterate(
        "SELECT fb_id, json_extract(payload, '$.name') AS name FROM source_objects WHERE kind = ?",
        (Kind.VENDOR.value,),
    ):
        yield int(row["fb_id"]), str(row["name"] or "")


def bill_number_rows(store: Store) -> Iterator[tuple[int, int | None, str]]:
    """(bill id, vendor id, bill number) of every snapshotted bill, streamed."""
    for row in store.iterate(
        "SELECT fb_id, json_extract(payload, '$.vendor_id') AS vendor_id, "
        "json_extract(payload, '$.bill_number') AS number FROM source_objects WHERE kind = ?",
        (Kind.BILL.value,),
    ):
        vendor_id = row["vendor_id"]
        yield (
            int(row["fb_id"]),
            None if vendor_id is None else int(vendor_id),
            str(row["number"] or ""),
        )


def last_processed(store: Store) -> dict[str, Any] | None:
    """The newest processed export's name and time, for `status`."""
    row = store.query_one(
        "SELECT name, processed_at FROM stampli_files WHERE state = ? ORDER BY id DESC LIMIT 1",
        (FileState.PROCESSED,),
    )
    return dict(row) if row else None


def open_quarantine(store: Store) -> list[dict[str, Any]]:
    """Quarantined files not yet replaced: one stays listed until a later file of its name is
    stored."""
    rows = store.query(
        "SELECT name, reason, local_path, processed_at FROM stampli_files AS q "
        "WHERE state = 'quarantined' AND NOT EXISTS "
        "(SELECT 1 FROM stampli_files AS later WHERE later.name = q.name AND later.id > q.id "
        "AND later.state IN ('processed', 'duplicate')) ORDER BY id"
    )
    return [dict(row) for row in rows]


def processed_since(store: Store, since: str) -> int:
    """How many export files were read (processed) at or after `since` (UTC text)."""
    row = store.query_one(
        "SELECT count(*) AS n FROM stampli_files WHERE state = ? AND processed_at >= ?",
        (FileState.PROCESSED, since),
    )
    return int(row["n"]) if row else 0


_FIELDS = tuple(field.name for field in fields(StampliRecord))


def record_json(record: StampliRecord) -> str:
    """The record as stored JSON; reconcile reads amounts and times back from it.

    Empty fields are left out (read back, a missing key and an empty one
    mean the same): it halves the bytes and the encoding time of a typical row.
    """
    data: dict[str, Any] = {}
    for name in _FIELDS:  # dataclass order: the same record always gives the same text
        value = getattr(record, name)
        if value is None or value == "" or value == {}:
            continue
        if isinstance(value, ExportKind):
            value = value.value
        elif isinstance(value, Decimal | date):  # datetime is a date
            value = value.isoformat() if isinstance(value, date) else str(value)
        data[name] = value
    return json.dumps(data)
