"""Bills' documents in the state: what each attachment (by its JWT) came to, and the upload
journal of each distinct document, keyed by the SHA-256 of its bytes.

A document's journal moves `fetched -> uploading -> part_verified -> rename_sent ->
delivered`, as a batch's does (`sync/deliver.py`); one row per content, so the same
bytes named by several bills, or by a bill again, are uploaded once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from fbstampli.models.documents import Document, DocumentOutcome, DocumentProblem, Media
from fbstampli.store import Row, Store


class DocumentState(StrEnum):
    FETCHED = "fetched"
    UPLOADING = "uploading"
    PART_VERIFIED = "part_verified"
    RENAME_SENT = "rename_sent"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class DocumentFile:
    sha256: str
    file_name: str
    size: int
    local_path: str | None
    state: DocumentState


def known_outcomes(store: Store, jwts: list[str]) -> dict[str, DocumentOutcome]:
    """What each of these attachments came to before; a download that failed is not kept."""
    found: dict[str, DocumentOutcome] = {}
    rows = store.query(
        "SELECT d.jwt, d.sha256, d.problem, d.detail, f.file_name, f.size "
        "FROM bill_documents d LEFT JOIN document_files f ON f.sha256 = d.sha256 "
        "WHERE d.jwt IN (SELECT value FROM json_each(?))",
        (json.dumps(jwts),),
    )
    for row in rows:
        jwt = str(row["jwt"])
        if row["problem"] is not None:
            problem = DocumentProblem(row["problem"])
            found[jwt] = DocumentOutcome(jwt, problem=problem, detail=str(row["detail"]))
        elif row["file_name"] is not None:
            media = Media(str(row["file_name"]).rsplit(".", 1)[1])
            document = Document(str(row["sha256"]), int(row["size"]), media)
            found[jwt] = DocumentOutcome(jwt, document=document)
    return found


def record_outcome(store: Store, bill_id: int, outcome: DocumentOutcome, local_path: str) -> bool:
    """Keep what an attachment came to; a new document's journal starts as `fetched`.

    False when the document's bytes were known already (another bill's, or this one's
    before): its journal is left as it is.
    """
    document = outcome.document
    store.execute(
        "INSERT OR REPLACE INTO bill_documents (jwt, bill_id, sha256, problem, detail, checked_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            outcome.jwt,
            bill_id,
            document.sha256 if document else None,
            outcome.problem.value if outcome.problem else None,
            outcome.detail,
            store.now_text(),
        ),
    )
    if document is None:
        return True
    known = store.query_one("SELECT 1 FROM document_files WHERE sha256 = ?", (document.sha256,))
    if known is None:
        store.execute(
            "INSERT INTO document_files "
            "(sha256, file_name, size, local_path, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                document.sha256,
                document.file_name,
                document.size,
                local_path,
                DocumentState.FETCHED,
                store.now_text(),
            ),
        )
    return known is None


def document_files(store: Store, names: list[str]) -> list[DocumentFile]:
    """The journal rows of the documents these file names are, in the order named."""
    files: list[DocumentFile] = []
    for name in names:
        row = store.query_one(
            "SELECT sha256, file_name, size, local_path, state FROM document_files "
            "WHERE file_name = ?",
            (name,),
        )
        if row is not None:
            files.append(
                DocumentFile(
                    row["sha256"],
                    row["file_name"],
                    int(row["size"]),
                    row["local_path"],
                    DocumentState(row["state"]),
                )
            )
    return files


def set_document_state(
    store: Store, sha256: str, state: DocumentState, *, forget_local: bool = False
) -> None:
    if forget_local:
        store.execute(
            "UPDATE document_files SET state = ?, local_path = NULL, updated_at = ? "
            "WHERE sha256 = ?",
            (state, store.now_text(), sha256),
        )
        return
    store.execute(
        "UPDATE document_files SET state = ?, updated_at = ? WHERE sha256 = ?",
        (state, store.now_text(), sha256),
    )


def undelivered_named(store: Store, names: list[str]) -> list[DocumentFile]:
    """The documents among these names Stampli does not have yet, in the order named."""
    return [d for d in document_files(store, names) if d.state is not DocumentState.DELIVERED]


def mark_delivered(store: Store, sha256s: list[str], *, keep: bool) -> None:
    """These documents reached Stampli (inside a ZIP); their copies kept only if `keep`."""
    for sha256 in sha256s:
        set_document_state(store, sha256, DocumentState.DELIVERED, forget_local=not keep)


def kept_copies(store: Store, delivered_before: str) -> list[DocumentFile]:
    """Delivered documents whose copy is still kept and was delivered before that time."""
    rows = store.query(
        "SELECT sha256, file_name, size, local_path, state FROM document_files "
        "WHERE state = ? AND local_path IS NOT NULL AND updated_at < ? ORDER BY sha256",
        (DocumentState.DELIVERED, delivered_before),
    )
    return [
        DocumentFile(
            row["sha256"],
            row["file_name"],
            int(row["size"]),
            row["local_path"],
            DocumentState(row["state"]),
        )
        for row in rows
    ]


# The problems a person must act on (the bill is in Stampli, its document is not); a
# failing download is tried again by every run, and a refused scope is said once.
WANTING = (DocumentProblem.MISSING, DocumentProblem.TOO_LARGE, DocumentProblem.REFUSED_TYPE)


def bills_without_documents(store: Store) -> list[Row]:
    """The live bills whose current document (the attachment FreshBooks names now) could
    not be sent: bill id, number, total, currency, vendor name, problem and detail, by id.

    A bill whose document is replaced or removed in FreshBooks, or that is deleted, leaves.
    """
    return store.query(
        "SELECT d.bill_id AS fb_bill_id, d.problem, d.detail, "
        "json_extract(b.payload, '$.bill_number') AS bill_number, "
        "json_extract(b.payload, '$.total_amount') AS total_amount, "
        "json_extract(b.payload, '$.currency_code') AS currency_code, "
        "json_extract(v.payload, '$.name') AS vendor "
        "FROM bill_documents AS d "
        "JOIN source_objects AS b ON b.kind = 'bill' AND b.fb_id = d.bill_id "
        "LEFT JOIN source_objects AS v ON v.kind = 'vendor' "
        "AND v.fb_id = json_extract(b.payload, '$.vendor_id') "
        "WHERE d.problem IN (SELECT value FROM json_each(?)) AND b.vis_state != 1 "
        "AND json_extract(b.payload, '$.attachment_jwt') = d.jwt ORDER BY d.bill_id",
        (json.dumps([problem.value for problem in WANTING]),),
    )
