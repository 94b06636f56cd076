"""pull-stampli: Stampli's outbound exports, downloaded once, parsed, stored against their bills.

Order, so that a kill anywhere is harmless: the file is downloaded whole to a
local copy (written atomically by the transport), then recorded as
`downloaded`; its records and the `processed` mark are one transaction. A
file left `downloaded` by a killed run is parsed again from its local copy,
never counted twice. A file that cannot be parsed is quarantined with its
reason and the rest of the poll goes on.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from itertools import islice
from pathlib import Path

from fbstampli.config import Settings
from fbstampli.errors import ExportParseError, RemoteError
from fbstampli.models import StampliRecord
from fbstampli.report import RunReport
from fbstampli.stampli.parse import detect_export_kind, parse_export
from fbstampli.stampli.template import Template
from fbstampli.store import Store
from fbstampli.sync.ports import RemoteFile, Transport

log = logging.getLogger(__name__)

CHUNK = 1000


def _identity(remote: RemoteFile) -> tuple[str, int | None, str | None]:
    return remote.name, remote.size, remote.mtime.isoformat() if remote.mtime else None


def _already_done(store: Store, remote: RemoteFile) -> bool:
    name, size, mtime = _identity(remote)
    row = store.query_one(
        "SELECT 1 FROM stampli_files WHERE name = ? AND size IS ? AND mtime IS ? "
        "AND state IN ('processed', 'quarantined', 'duplicate')",
        (name, size, mtime),
    )
    return row is not None


def _local_path(folder: Path, name: str) -> Path:
    """The local copy's path; a name that would leave the folder is refused, not followed."""
    candidate = (folder / name).resolve()
    if candidate.parent != folder.resolve() or name in ("", ".", ".."):
        raise RemoteError(f"export name {name!r} would leave {folder}; it was not downloaded")
    return candidate


def _link_bill(store: Store, record: StampliRecord) -> int | None:
    """The FreshBooks bill id we wrote; else the one bill with that invoice number.

    Invoice numbers are not unique (several vendors may use the same one), so
    an ambiguous number links to nothing rather than to the wrong bill.
    """
    if record.fb_bill_id is not None:
        return record.fb_bill_id
    if not record.invoice_number:
        return None
    rows = store.query(
        "SELECT fb_id FROM source_objects WHERE kind = 'bill' "
        "AND json_extract(payload, '$.bill_number') = ? LIMIT 2",
        (record.invoice_number,),
    )
    return int(rows[0]["fb_id"]) if len(rows) == 1 else None


def _record_json(record: StampliRecord) -> str:
    data = asdict(record)
    return json.dumps(data, default=str, sort_keys=True)


def _store_records(
    store: Store, file_id: int, records: list[StampliRecord], run_id: int | None
) -> None:
    rows, audits = [], []
    now = store.now_text()
    for record in records:
        bill_id = _link_bill(store, record)
        rows.append(
            (
                file_id,
                record.source_line,
                record.export_kind.value,
                record.stampli_invoice_id,
                bill_id,
                record.status,
                _record_json(record),
            )
        )
        detail = f"{record.stampli_invoice_id} {record.status}".strip()
        if record.amount is not None:
            detail += f" {record.amount} {record.currency_code}".rstrip()
        audits.append((now, run_id, "bill", bill_id, f"stampli_{record.export_kind.value}", detail))
    store.execute_many(
        "INSERT INTO stampli_records (file_id, line, export_kind, stampli_invoice_id, fb_bill_id, "
        "status, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    store.execute_many(
        "INSERT INTO audit (at, run_id, kind, fb_id, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
        audits,
    )


def _process(
    store: Store,
    template: Template,
    file_id: int,
    name: str,
    local: Path,
    run_id: int | None,
) -> int:
    """Parse a local copy and store its records with the `processed` mark, all or nothing."""
    count = 0
    with local.open("rb") as stream, store.transaction():
        records = parse_export(template, name, stream)
        while chunk := list(islice(records, CHUNK)):
            _store_records(store, file_id, chunk, run_id)
            count += len(chunk)
        store.execute(
            "UPDATE stampli_files SET state = 'processed', records = ?, processed_at = ? "
            "WHERE id = ?",
            (count, store.now_text(), file_id),
        )
        store.audit("stampli_file_processed", detail=f"{name}: {count} records", run_id=run_id)
    return count


def _quarantine(
    store: Store,
    file_id: int,
    local: Path,
    quarantine: Path,
    error: ExportParseError,
    run_id: int | None,
    report: RunReport,
) -> None:
    quarantine.mkdir(parents=True, exist_ok=True)
    target = quarantine / local.name
    if local.exists():
        os.replace(local, target)
    with store.transaction():
        store.execute(
            "UPDATE stampli_files SET state = 'quarantined', reason = ?, local_path = ? "
            "WHERE id = ?",
            (str(error), str(target), file_id),
        )
        store.audit("stampli_file_quarantined", detail=str(error), run_id=run_id)
    report.add("quarantined")
    report.problems.append(f"quarantined {local.name}: {error}")


def pull(
    store: Store,
    transport: Transport,
    template: Template,
    *,
    settings: Settings,
    folder: Path,
    quarantine: Path,
    run_id: int | None,
    report: RunReport,
) -> None:
    outbound = settings.stampli.outbound_dir
    folder.mkdir(parents=True, exist_ok=True)
    max_bytes = settings.pull.max_file_mb * 1024 * 1024
    for remote in transport.list_files(outbound):
        export_kind = detect_export_kind(template, remote.name)
        if export_kind is None or _already_done(store, remote):
            continue
        name, size, mtime = _identity(remote)
        local = _local_path(folder, name)
        with store.transaction():  # a row a killed run left half-done is redone whole
            store.execute(
                "DELETE FROM stampli_files WHERE name = ? AND size IS ? AND mtime IS ? "
                "AND state = 'downloaded'",
                (name, size, mtime),
            )
        try:
            got_size, sha256 = transport.download(outbound, name, local, max_bytes=max_bytes)
        except RemoteError as error:
            report.problems.append(f"could not download {name}: {error}")
            continue
        duplicate = store.query_one(
            "SELECT name FROM stampli_files WHERE sha256 = ? AND state = 'processed'", (sha256,)
        )
        with store.transaction():
            file_id = store.execute(
                "INSERT INTO stampli_files (name, size, mtime, sha256, export_kind, state, "
                "local_path, downloaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    size if size is not None else got_size,
                    mtime,
                    sha256,
                    export_kind.value,
                    "duplicate" if duplicate else "downloaded",
                    str(local),
                    store.now_text(),
                ),
            )
        if duplicate:
            report.add("duplicates")
            report.notes.append(
                f"{name} repeats {duplicate['name']} byte for byte; not processed again"
            )
            continue
        try:
            report.add("records", _process(store, template, file_id, name, local, run_id))
            report.add("files")
        except ExportParseError as error:
            _quarantine(store, file_id, local, quarantine, error, run_id, report)
            continue
        if settings.stampli.archive_dir:
            try:
                transport.move(outbound, name, settings.stampli.archive_dir)
            except RemoteError as error:
                report.notes.append(f"could not archive {name}: {error}")
