"""pull-stampli: Stampli's outbound exports, downloaded once, parsed, stored against their bills.

A file's row is the journal of its handling, so a kill at any instant is harmless:

    downloading -> downloaded -> processed | quarantined | duplicate

The row is committed as `downloading` (with the local name it will get)
before a byte is read; the transport writes the local copy whole or not at
all, so a copy found beside a `downloading` row is complete and is hashed
locally instead of being read from the server again (some servers allow one
read per file). A `downloaded` row is parsed from its local copy. The records
and the `processed` mark are one transaction, so a file is never counted
twice. An unparseable file is quarantined with its reason and the rest of
the poll goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from fbstampli.config import Settings
from fbstampli.errors import (
    ConfigError,
    ExportParseError,
    RemoteError,
    StateUnusableError,
    TemporaryError,
)
from fbstampli.models import ExportKind, StampliRecord
from fbstampli.models.remote import RemoteFile
from fbstampli.paths import private_folder
from fbstampli.report import RunReport
from fbstampli.stampli.parse import detect_export_kind, parse_export
from fbstampli.stampli.template import Template
from fbstampli.store import Store
from fbstampli.store import stampli_files as journal
from fbstampli.store.reconcile_facts import bill_issue_dates
from fbstampli.store.stampli_files import DONE_STATES, FileRow, FileState, record_json
from fbstampli.sync.connection import Connection
from fbstampli.sync.local_copies import MAX_LOCAL_NAME_BYTES, local_name, local_path, sha256_of
from fbstampli.sync.matching import BillLinks
from fbstampli.sync.ports import Transport

log = logging.getLogger(__name__)

CHUNK = 1000  # records per insert; bounds memory whatever the file size


@dataclass(frozen=True, slots=True)
class PullContext:
    """Everything one poll needs besides the store and the server."""

    template: Template
    settings: Settings
    folder: Path  # local copies: <home>/stampli
    quarantine: Path  # <home>/stampli/quarantine
    run_id: int | None


def is_due(last_run: datetime | None, now: datetime, interval: timedelta) -> bool:
    """A poll is due once `interval` has passed since the last finished one (or there was none).

    A last run in the future (a clock set back) counts as due: waiting for the
    clock to catch up could silence the pull for hours.
    """
    if last_run is None or last_run > now:
        return True
    return now - last_run >= interval


def _identity(remote: RemoteFile) -> tuple[str, int | None, str | None]:
    return remote.name, remote.size, remote.mtime.isoformat() if remote.mtime else None


def _store_records(
    store: Store,
    links: BillLinks,
    file_id: int,
    records: Iterable[StampliRecord],
    run_id: int | None,
) -> int:
    rows: list[tuple[Any, ...]] = []
    audits: list[tuple[Any, ...]] = []
    now = store.now_text()
    for record in records:
        bill_id = links.bill_id(record)
        rows.append(
            (
                file_id,
                record.source_line,
                record.export_kind.value,
                record.stampli_invoice_id,
                bill_id,
                record.status,
                record_json(record),
            )
        )
        detail = f"{record.stampli_invoice_id} {record.status}".strip()
        if record.amount is not None:
            detail += f" {record.amount} {record.currency_code}".rstrip()
        audits.append((now, run_id, "bill", bill_id, f"stampli_{record.export_kind.value}", detail))
    journal.add_records(store, rows)
    store.audit_many(audits)
    return len(rows)


def _process(
    store: Store, context: PullContext, links: BillLinks, file_id: int, name: str, local: Path
) -> int:
    """Parse a local copy and store its records with the `processed` mark, all or nothing."""
    count = 0
    with local.open("rb") as stream, store.transaction():
        records = parse_export(context.template, name, stream)
        while chunk := list(islice(records, CHUNK)):
            count += _store_records(store, links, file_id, chunk, context.run_id)
        journal.mark_processed(store, file_id, count)
        store.audit(
            "stampli_file_processed", detail=f"{name}: {count} records", run_id=context.run_id
        )
    return count


def _quarantine(
    store: Store,
    context: PullContext,
    file_id: int,
    name: str,
    local: Path | None,
    reason: str,
    report: RunReport,
) -> None:
    """Record the reason first, then move the copy aside: a kill in between leaves a stray copy,
    never a file that is parsed again."""
    target: Path | None = None
    if local is not None and local.exists():
        private_folder(context.quarantine.parent, context.quarantine.name)  # never a link
        short = name if len(name.encode("utf-8", "surrogateescape")) <= MAX_LOCAL_NAME_BYTES else ""
        target = context.quarantine / (short or local.name)
        if target.exists():
            target = context.quarantine / f"{local.name}.{file_id}"
    with store.transaction():
        journal.mark_quarantined(store, file_id, reason, target)
        store.audit("stampli_file_quarantined", detail=f"{name}: {reason}", run_id=context.run_id)
    if local is not None and target is not None:
        os.replace(local, target)
    report.add("quarantined")
    why = reason.removeprefix(f"{name}, ").removeprefix(f"{name}: ")
    kept = f"the copy is in {target}" if target is not None else "it stays on the server"
    report.problems.append(
        f"quarantined {name} ({why}): {kept}; have Stampli export it again (or fix the "
        "template): a new file of that name is read by the next pull"
    )


def _open_row(store: Store, remote: RemoteFile, export_kind: ExportKind, folder: Path) -> FileRow:
    """The row for this identity, or a new `downloading` row committed before any download.

    Each row gets its own local name (`<id>-<name>`), so a copy on disk can
    only ever belong to the row that names it, never to an older version of
    a file under the same remote name.
    """
    name, size, mtime = _identity(remote)
    found = journal.find_file(store, name, size, mtime)
    if found is not None:
        return found
    with store.transaction():
        file_id = journal.add_file(store, name, size, mtime, export_kind)
        local = local_path(folder, local_name(file_id, name))
        journal.set_local_path(store, file_id, local)
    return FileRow(file_id, name, FileState.DOWNLOADING, "", local)


def _fetch(
    store: Store, transport: Transport, context: PullContext, file: FileRow, local: Path
) -> str:
    """Bring a `downloading` row to `downloaded`; return the copy's sha256.

    A complete copy already on disk (a run killed after the download) is
    hashed here rather than fetched again.
    """
    if local.exists():
        size, sha256 = sha256_of(local)
    else:
        max_bytes = context.settings.pull.max_file_mb * 1024 * 1024
        size, sha256 = transport.download(
            context.settings.stampli.outbound_dir, file.name, local, max_bytes=max_bytes
        )
    with store.transaction():
        journal.mark_downloaded(store, file.id, sha256, size)
    return sha256


def _handle(
    store: Store,
    transport: Transport,
    context: PullContext,
    links: BillLinks,
    remote: RemoteFile,
    export_kind: ExportKind,
    report: RunReport,
) -> bool:
    """Take one remote file as far as it goes; True when it is done and may be archived."""
    file = _open_row(store, remote, export_kind, context.folder)
    if file.state in DONE_STATES:
        # Done by an earlier run that did not get to archive it; quarantined files stay.
        # (A row found here matched the name and the size or time: a done row always has
        # its size, so a server that reports none never matches one and re-reads instead.)
        return file.state is not FileState.QUARANTINED
    # A row from before per-row local names had none; it gets one now.
    local = file.local or local_path(context.folder, local_name(file.id, file.name))
    limit_mb = context.settings.pull.max_file_mb
    oversize = remote.size is not None and remote.size > limit_mb << 20
    if file.state is FileState.DOWNLOADING and oversize:
        reason = f"{remote.size} bytes is over pull.max_file_mb ({limit_mb})"
        _quarantine(store, context, file.id, file.name, None, reason, report)
        return False
    if file.state is FileState.DOWNLOADED and local.exists():
        sha256 = file.sha256
    else:
        sha256 = _fetch(store, transport, context, file, local)
    original = journal.processed_with_hash(store, sha256, file.id)
    if original is not None:
        with store.transaction():
            journal.mark_duplicate(store, file.id, f"same bytes as {original}")
            store.audit(
                "stampli_file_duplicate",
                detail=f"{file.name} repeats {original}",
                run_id=context.run_id,
            )
        local.unlink(missing_ok=True)
        report.add("duplicates")
        report.notes.append(f"{file.name} repeats {original} byte for byte; not processed again")
        return True
    try:
        count = _process(store, context, links, file.id, file.name, local)
    except ExportParseError as error:
        _quarantine(store, context, file.id, file.name, local, str(error), report)
        return False
    report.add("records", count)
    report.add("files")
    log.info("stored %d records from %s", count, file.name)
    return True


def pull(
    store: Store,
    connection: Connection,
    context: PullContext,
    report: RunReport,
) -> None:
    """One poll of the outbound folder: every new export downloaded once and stored.

    One bad file (unsafe name, refused download, unparseable) is a problem line
    and the next file is still handled. A connection lost during a file is
    opened again once for that file; lost twice, the poll ends and the next
    run resumes each file from its journal state.
    """
    outbound = context.settings.stampli.outbound_dir
    archive = context.settings.stampli.archive_dir
    _prepare_folder(context.folder)
    links = BillLinks(
        partial(journal.vendor_name_rows, store),
        partial(journal.bill_number_rows, store),
        partial(bill_issue_dates, store),
    )
    for remote in connection.get().list_files(outbound):
        try:
            local_path(context.folder, remote.name)  # refused before it is even classified
        except RemoteError as error:
            report.problems.append(str(error))
            continue
        export_kind = detect_export_kind(context.template, remote.name)
        if export_kind is None:
            continue
        try:
            # Safe twice: the row is still `downloading`, the local copy whole or absent.
            done = connection.once_more_if_lost(
                partial(
                    _handle,
                    store,
                    context=context,
                    links=links,
                    remote=remote,
                    export_kind=export_kind,
                    report=report,
                ),
                f"fetching {remote.name}",
            )
        except RemoteError as error:
            report.problems.append(f"could not fetch {remote.name!r}: {error}")
            continue
        except (TemporaryError, StateUnusableError, ConfigError):
            raise  # this machine's trouble (disk, state, settings): the next run resumes
        except Exception as error:  # the file's: it must not stop every later pull
            log.warning("could not handle %r; quarantined", remote.name, exc_info=True)
            _quarantine_unreadable(store, context, remote, export_kind, error, report)
            continue
        if done and archive:
            _archive(connection, outbound, remote.name, archive, report)


def _prepare_folder(folder: Path) -> None:
    """The downloads folder, made if need be, cleared of what a killed download left."""
    try:
        # Opened beneath the home, never through a link planted as `stampli/`.
        folder.parent.mkdir(parents=True, exist_ok=True)
        private_folder(folder.parent, folder.name)
    except OSError as error:
        raise ConfigError(
            f"cannot keep Stampli's files in {folder} ({error.strerror}); check that folder"
        ) from None
    # A download killed mid-file leaves its temporary copy; under the run lock no other
    # run is writing one, so what is here is litter.
    for litter in folder.glob(".*.tmp"):
        litter.unlink(missing_ok=True)


def _quarantine_unreadable(
    store: Store,
    context: PullContext,
    remote: RemoteFile,
    export_kind: ExportKind,
    error: Exception,
    report: RunReport,
) -> None:
    """Set aside a file whose handling failed in a way no parser rule foresaw, for good."""
    reason = f"could not be handled ({type(error).__name__}: {error})"
    try:
        file = _open_row(store, remote, export_kind, context.folder)
    except Exception:  # not even a row: say so, and let the next run try again
        log.debug("no journal row for %r", remote.name, exc_info=True)
        report.problems.append(f"could not handle {remote.name!r}: {reason}")
        return
    local = file.local if file.local is not None and file.local.exists() else None
    _quarantine(store, context, file.id, file.name, local, reason, report)


def _archive(
    connection: Connection, outbound: str, name: str, archive: str, report: RunReport
) -> None:
    """Move a done file to the archive; a refusal is a note, a lost connection gets one more.

    A move lost with its connection may have happened: a refusal then finds the
    file archived already, which is no failure. Lost twice, the poll ends; the
    file is stored, so the next run only moves it.
    """

    def move(transport: Transport) -> None:
        try:
            transport.move(outbound, name, archive)
        except RemoteError as error:
            if transport.exists(outbound, name) or not transport.exists(archive, name):
                report.notes.append(f"could not archive {name}: {error}")

    connection.once_more_if_lost(move, f"archiving {name}")
