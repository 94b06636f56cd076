"""The ZIP layout (template `documents = "zip"`, Coupa's convention): each bills file goes to
Stampli inside a ZIP holding it and the documents its rows name, at most `zip_max_mb`.

A bills batch too big for one ZIP is planned as several (`zip_parts`), each self-contained:
its bills file holds exactly the rows whose documents that ZIP carries. A document Stampli
already has (an earlier ZIP's) is named by its row, never sent again: the same bytes go
once. A document too large to fit a ZIP at all is refused when it is fetched
(`document_limit`), so its bill goes without it, flagged `too_large`.

The ZIP is built when it is uploaded, streamed into a private temporary file in the home
(never whole in memory) from the batch's stored bills file and the kept copies of the
documents Stampli does not have yet, then sent through the batch's own `.part`/rename
journal (`deliver.advance_batch`). The same batch always builds the same bytes (fixed entry
times and order), so a run killed mid-upload re-sends the same ZIP, once.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from fbstampli.atomic import create_exclusive
from fbstampli.errors import RenderError
from fbstampli.store import Store
from fbstampli.store.documents import DocumentFile, mark_delivered, undelivered_named
from fbstampli.sync.batch import PlannedFile
from fbstampli.sync.documents import DocumentFolder, DocumentUploadError, named_documents
from fbstampli.sync.ports import Renderer, Transport

log = logging.getLogger(__name__)

CSV_RESERVE = 64 * 1024  # room kept in a ZIP for the bills file beside its largest document
_ENTRY_BYTES = 96  # a ZIP entry's local and central headers, beside twice its name
_END_BYTES = 64  # the end-of-archive record, with room to spare
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # every entry's time: the same batch, the same bytes
_CHUNK = 1024 * 1024
_PLAIN_SUFFIXES = (".csv", ".xml", ".txt")


def zip_name(name: str) -> str:
    """The ZIP's name: the bills file's, its `.csv`/`.xml`/`.txt` ending made `.zip`."""
    for suffix in _PLAIN_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] + ".zip"
    return name + ".zip"


def is_zip(name: str) -> bool:
    """Whether a batch goes as a ZIP (a template's own names never end in `.zip`)."""
    return name.lower().endswith(".zip")


def inner_name(name: str, content: bytes) -> str:
    """The bills file's name inside the ZIP `name`: the ZIP's, ending as its format does."""
    xml = content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<?xml")
    return name[: -len(".zip")] + (".xml" if xml else ".csv")


def document_limit(max_bytes: int, zip_limit: int | None) -> int:
    """The largest document fetched: the setting's, and in the ZIP layout one that fits a
    ZIP beside its bills file (a larger one is `too_large`, its bill sent without it)."""
    return max_bytes if zip_limit is None else max(1, min(max_bytes, zip_limit - CSV_RESERVE))


def _entry(name: str, size: int) -> int:
    return size + 2 * len(name.encode()) + _ENTRY_BYTES


def _deflated(size: int) -> int:
    """At most what deflate makes of `size` bytes (zlib's compressBound, rounded up)."""
    return size + size // 1024 + 16


def split(costs: Sequence[tuple[int, Mapping[str, int]]], *, limit: int, fixed: int) -> list[range]:
    """Consecutive groups of members, each group's ZIP at most `limit` bytes where it can be.

    A member's cost is its rows' bytes in the bills file and the documents it names that
    Stampli does not have (name -> size); a document two members name counts once per ZIP.
    `fixed` is the bills file's header and the archive's own bytes. A member too large on
    its own still gets a ZIP, alone (the caller logs it).
    """
    groups: list[range] = []
    start, total, carried = 0, fixed, set[str]()
    for index, (row_bytes, documents) in enumerate(costs):
        extra = _deflated(row_bytes) + sum(
            _entry(name, size) for name, size in documents.items() if name not in carried
        )
        if index > start and total + extra > limit:
            groups.append(range(start, index))
            start, total, carried = index, fixed, set()
            extra = _deflated(row_bytes) + sum(_entry(n, s) for n, s in documents.items())
        total += extra
        carried.update(documents)
    if start < len(costs):
        groups.append(range(start, len(costs)))
    return groups


def zip_parts(
    store: Store, renderer: Renderer, planned: PlannedFile, limit: int
) -> list[PlannedFile]:
    """One planned bills file as the ZIPs it needs, each within `limit` bytes."""
    header = len(renderer.file_bytes(planned.kind, []))
    costs: list[tuple[int, Mapping[str, int]]] = []
    for member in planned.members:
        try:
            data = renderer.file_bytes(planned.kind, member.rows)
        except RenderError:
            costs.append((0, {}))  # held when its file is rendered (`sync.poison`)
            continue
        waiting = undelivered_named(store, named_documents(data))
        costs.append((len(data) - header, {d.file_name: d.size for d in waiting}))
    fixed = _entry("bills", _deflated(header)) + _END_BYTES + 200  # 200: a long file name
    groups = split(costs, limit=limit, fixed=fixed)
    for group in groups:
        row_bytes, documents = costs[group.start]
        alone = fixed + _deflated(row_bytes) + sum(_entry(n, s) for n, s in documents.items())
        if len(group) == 1 and alone > limit:  # its rows are longer than CSV_RESERVE
            log.warning(
                "bill %d makes a ZIP over the limit on its own", planned.members[group.start].fb_id
            )
    return [PlannedFile(planned.kind, planned.members[g.start : g.stop]) for g in groups]


def build_zip(out: BinaryIO, inner: str, content: bytes, documents: Sequence[DocumentFile]) -> None:
    """Write the ZIP to `out`: the bills file (deflated), then each document (stored: they
    are compressed already) copied a chunk at a time, never read whole."""
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo(inner, date_time=_FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        archive.writestr(info, content)
        for document in documents:
            info = zipfile.ZipInfo(document.file_name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with (
                Path(document.local_path or "").open("rb") as source,
                archive.open(info, "w") as into,
            ):
                shutil.copyfileobj(source, into, _CHUNK)


def upload_zip(
    store: Store,
    transport: Transport,
    directory: str,
    name: str,
    content: bytes,
    folder: DocumentFolder | None,
) -> None:
    """Build the batch's ZIP in the home and write it to the server as `.<name>.part`."""
    documents = undelivered_named(store, named_documents(content))
    for document in documents:
        if not document.local_path or not Path(document.local_path).is_file():
            raise DocumentUploadError(
                f"the copy of {document.file_name} kept in the home is gone, and {name} "
                "waits; restore the home's documents folder from a backup"
            )
    if folder is None:
        raise DocumentUploadError(f"{name}: no documents folder to build the ZIP in")
    folder.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = folder.path / f".zip-{secrets.token_hex(8)}.part"
    try:
        with create_exclusive(temporary) as out:
            build_zip(out, inner_name(name, content), content, documents)
        transport.write_part_file(directory, name, temporary)
    finally:
        temporary.unlink(missing_ok=True)


def zip_delivered(store: Store, content: bytes, folder: DocumentFolder | None) -> list[Path]:
    """Inside the caller's transaction: the documents the ZIP carried are in Stampli now.

    Returns the copies to remove once that is committed (none under a retention).
    """
    documents = undelivered_named(store, named_documents(content))
    keep = folder is not None and folder.keep
    mark_delivered(store, [document.sha256 for document in documents], keep=keep)
    if keep:
        return []
    return [Path(d.local_path) for d in documents if d.local_path]
