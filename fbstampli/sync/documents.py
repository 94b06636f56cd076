"""Bills' documents: each attachment fetched once, kept 0600 in the home until delivered, and
uploaded through the same `.part`/rename journal as the files, before the file naming it.

A bill's rows carry its document's content-made name, hash and status, so a new document
makes a new version of the bill and the same one none. A document that cannot be had
(missing, too large, of a refused type, refused to this login, failing) leaves its bill to
go without it, the status column saying why; it never holds up any bill. Only what a
document definitely came to is kept: a failing download, or a refused scope once the day
is up, is tried again by the next run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from fbstampli.clock import to_utc_text
from fbstampli.errors import RemoteError
from fbstampli.models import Bill
from fbstampli.models.documents import REASONS, DocumentOutcome, DocumentProblem
from fbstampli.models.remote import part_name
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.documents import (
    DocumentFile,
    DocumentState,
    document_files,
    kept_copies,
    known_outcomes,
    record_outcome,
    set_document_state,
)
from fbstampli.sync.fetch import Fetched
from fbstampli.sync.ports import BillSource, Transport

log = logging.getLogger(__name__)

# What a file names: a document's name is made of its hash, never of what FreshBooks says.
DOCUMENT_NAME = re.compile(rb"fbstampli_document_[0-9a-f]{64}\.(?:pdf|png|jpg|tif)")
KEPT = frozenset({DocumentProblem.MISSING, DocumentProblem.TOO_LARGE, DocumentProblem.REFUSED_TYPE})


class DocumentUploadError(RemoteError):
    """A document the file names cannot be sent: the file waits (its batch fails)."""


@dataclass(frozen=True, slots=True)
class DocumentFolder:
    """Where bills' documents wait in the home (0600 files in a 0700 folder), and how many
    days a delivered one's copy is kept there (`sync.document_retention_days`; 0: none)."""

    path: Path
    retention_days: int = 0

    @property
    def keep(self) -> bool:
        return self.retention_days > 0


def with_documents(
    store: Store,
    source: BillSource,
    fetched: Fetched,
    folder: Path,
    *,
    max_bytes: int,
    report: RunReport,
) -> Fetched:
    """The bills given what became of their documents, fetching the ones not seen before.

    A document found wanting is a problem of the run that found it (exit 1, and a line in
    the audit trail); the runs after send nothing new and say nothing more.
    """
    named = [bill for bill in fetched.bills if bill.attachment_jwt]
    if not named:
        return fetched
    known = known_outcomes(store, [bill.attachment_jwt for bill in named])
    if len(known) < len(named):
        _clear_litter(folder)
    flagged: Counter[str] = Counter()
    bills: list[Bill] = []
    for bill in fetched.bills:
        if not bill.attachment_jwt:
            bills.append(bill)
            continue
        outcome = known.get(bill.attachment_jwt)
        if outcome is None:
            outcome = known[bill.attachment_jwt] = _fetch(store, source, bill, folder, max_bytes)
            if outcome.problem not in (None, DocumentProblem.SCOPE_MISSING):  # that one: said once
                flagged[outcome.problem] += 1
        document = outcome.document
        bills.append(
            dataclasses.replace(
                bill,
                document_file=document.file_name if document else "",
                document_sha256=document.sha256 if document else "",
                document_status=outcome.status,
            )
        )
    for problem, count in sorted(flagged.items()):
        report.add(f"documents.{problem}", count)
        report.problems.append(
            f"{count} bill(s) sent without their document: {REASONS[DocumentProblem(problem)]}"
            " (the bill's Document Status column says so)"
        )
    return dataclasses.replace(fetched, bills=bills)


def _clear_litter(folder: Path) -> None:
    """Downloads a killed run left half written (a push holds the run lock: none is live)."""
    for stale in folder.glob(".download-*.part") if folder.is_dir() else ():
        stale.unlink(missing_ok=True)


def _fetch(
    store: Store, source: BillSource, bill: Bill, folder: Path, max_bytes: int
) -> DocumentOutcome:
    """Download into a fresh private file, then name it by its content; keep the outcome."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = folder / f".download-{secrets.token_hex(8)}.part"
    outcome = source.download_document(bill.attachment_jwt, temporary, max_bytes=max_bytes)
    local = ""
    if outcome.document is not None:
        final = folder / outcome.document.file_name
        os.replace(temporary, final)  # same bytes, same name: a copy already there is equal
        local = str(final)
    else:
        temporary.unlink(missing_ok=True)
    if outcome.document is not None or outcome.problem in KEPT:
        with store.transaction():
            fresh = record_outcome(store, bill.fb_id, outcome, local)
            if outcome.problem is not None:
                reason = REASONS[outcome.problem]
                detail = f"{reason} ({outcome.detail})" if outcome.detail else reason
                store.audit("document_not_sent", kind="bill", fb_id=bill.fb_id, detail=detail)
        if not fresh and _delivered_unkept(store, outcome):
            Path(local).unlink(missing_ok=True)  # Stampli has these bytes: keep no copy
    return outcome


def _delivered_unkept(store: Store, outcome: DocumentOutcome) -> bool:
    """Stampli has these bytes and no copy is kept of them (a kept one is the same file)."""
    document = outcome.document
    if document is None:
        return False
    found = document_files(store, [document.file_name])
    return bool(found) and found[0].state is DocumentState.DELIVERED and not found[0].local_path


def named_documents(content: bytes) -> list[str]:
    """The document names a file's bytes carry, each once, in order."""
    return list(dict.fromkeys(m.decode() for m in DOCUMENT_NAME.findall(content)))


def send_documents(
    store: Store, transport: Transport, directory: str, content: bytes, *, keep: bool = False
) -> None:
    """Deliver every document `content` names and Stampli does not have yet, before it.

    Each goes `.part` -> verified -> rename, its state committed before each step, as a
    batch does; recovery looks at the server first, so a document is never sent twice.
    A delivered one's copy in the home goes at once unless `keep` (a retention is set).
    """
    for document in document_files(store, named_documents(content)):
        if document.state is not DocumentState.DELIVERED:
            _advance(store, transport, directory, document, keep)


def _advance(
    store: Store, transport: Transport, directory: str, document: DocumentFile, keep: bool
) -> None:
    name, state = document.file_name, document.state
    if state is not DocumentState.FETCHED:
        if transport.exists(directory, name):
            _delivered(store, document, keep)
            return
        part_present = transport.exists(directory, part_name(name))
        if state is not DocumentState.UPLOADING and part_present:
            _rename(store, transport, directory, document, keep)
            return
        if state is DocumentState.RENAME_SENT:
            _delivered(store, document, keep)  # Stampli took it before we looked
            return
        if part_present:
            transport.remove(directory, part_name(name))
    local = Path(document.local_path or "")
    if not document.local_path or not local.is_file():
        raise DocumentUploadError(
            f"the copy of {name} kept in the home is gone, and the file naming it waits; "
            "restore the home's documents folder from a backup"
        )
    with store.transaction():
        set_document_state(store, document.sha256, DocumentState.UPLOADING)
    transport.write_part_file(directory, name, local)
    with store.transaction():
        set_document_state(store, document.sha256, DocumentState.PART_VERIFIED)
    _rename(store, transport, directory, document, keep)


def _rename(
    store: Store, transport: Transport, directory: str, document: DocumentFile, keep: bool
) -> None:
    with store.transaction():
        set_document_state(store, document.sha256, DocumentState.RENAME_SENT)
    transport.rename_part(directory, document.file_name)
    _delivered(store, document, keep)


def _delivered(store: Store, document: DocumentFile, keep: bool) -> None:
    """Delivered: the local copy has done its job and goes, unless a retention keeps it."""
    with store.transaction():
        set_document_state(store, document.sha256, DocumentState.DELIVERED, forget_local=not keep)
    if document.local_path and not keep:
        Path(document.local_path).unlink(missing_ok=True)


def tidy_documents(store: Store, folder: DocumentFolder, now: datetime) -> int:
    """Remove the copies the retention no longer keeps, and what a killed run left behind:
    a half-built ZIP, or a delivered document's copy its run had no time to remove.

    Runs under the run lock, so nothing here is in use. Returns the copies removed.
    """
    if not folder.path.is_dir():
        return 0
    for litter in folder.path.glob(".zip-*.part"):
        litter.unlink(missing_ok=True)
    cutoff = to_utc_text(now - timedelta(days=folder.retention_days))
    expired = kept_copies(store, cutoff)
    with store.transaction():
        for document in expired:
            set_document_state(store, document.sha256, DocumentState.DELIVERED, forget_local=True)
    for document in expired:
        Path(document.local_path or "").unlink(missing_ok=True)
    present = [p.name for p in folder.path.iterdir() if DOCUMENT_NAME.fullmatch(p.name.encode())]
    orphans = [
        document
        for document in document_files(store, present)
        if document.state is DocumentState.DELIVERED and not document.local_path
    ]
    for document in orphans:
        (folder.path / document.file_name).unlink(missing_ok=True)
    return len(expired) + len(orphans)
