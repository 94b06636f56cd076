"""The edges the sync engine drives, as protocols.

The real adapters (`freshbooks.client.FreshBooksClient`, `sftp.SftpTransport`)
fit these structurally. The tests' in-memory SFTP (`MemoryTransport`) runs the same
transport contract suite as the real servers (`tests/contract/`).
Declared here, beside their consumer, so `sync/` depends on nothing below it
but models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from fbstampli.models import (
    Bill,
    BillPayment,
    ExpenseCategory,
    Kind,
    SourceObject,
    Tax,
    Vendor,
    VisState,
)
from fbstampli.models.documents import DocumentOutcome
from fbstampli.models.remote import RemoteFile


class BillSource(Protocol):
    """FreshBooks, as far as pushing bills needs it.

    `vis_state=None` lists what FreshBooks lists by default (active and
    archived); `VisState.DELETED` lists deleted objects, which FreshBooks
    omits otherwise. Listing pages at `per_page=100`.
    """

    def list_vendors(self, *, vis_state: VisState | None = None) -> Iterator[Vendor]: ...

    def list_bills(self, *, vis_state: VisState | None = None) -> Iterator[Bill]: ...

    def recent_vendor_pages(self) -> Iterator[list[Vendor]]:
        """Pages asked for newest `updated_at` first; the caller checks the order was honoured."""
        ...

    def recent_bill_pages(self) -> Iterator[list[Bill]]: ...

    def recent_deleted_vendor_pages(self) -> Iterator[list[Vendor]]:
        """Deleted vendors (`search[vis_state]=1`), newest `updated_at` first."""
        ...

    def recent_deleted_bill_pages(self) -> Iterator[list[Bill]]: ...

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]: ...

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        """The payments of these bills (`search[billid]`); the caller checks the filter held."""
        ...

    def get_vendors(
        self, ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> list[Vendor]: ...

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]: ...

    def get_bill(self, bill_id: int) -> Bill | None:
        """One bill by id, lines and all (a listed bill may come without them)."""
        ...

    def download_document(self, jwt: str, dest: Path, *, max_bytes: int) -> DocumentOutcome:
        """Stream the bill document `jwt` names into the new file `dest`; never raises for
        a document that cannot be had (the outcome says why)."""
        ...

    def list_expense_categories(self) -> list[ExpenseCategory] | None:
        """Every expense category FreshBooks lists; None when the login may not read them
        (the client learns that once and says it once)."""
        ...

    def list_taxes(self) -> list[Tax] | None:
        """Every tax FreshBooks lists; None when the login may not read them."""
        ...

    def check_sort(self, resource: str, newest: datetime, oldest: datetime) -> None:
        """After a full listing of `resource` ("bills", "bill_vendors"), check whether the
        newest-first listing really starts with `newest` (and oldest-first with `oldest`)."""
        ...


class Transport(Protocol):
    """Stampli's SFTP server, as the primitives the delivery journal needs.

    Directories are given relative to the login directory as configured.
    Every method raises `RemoteUnavailableError` when the server is gone and
    `RemoteError` when it refuses; never a paramiko exception.
    """

    def list_files(self, directory: str) -> list[RemoteFile]:
        """Regular files only, names already checked (no `/`, no `..`)."""

    def exists(self, directory: str, name: str) -> bool: ...

    def write_part(self, directory: str, final_name: str, data: bytes) -> None:
        """Write `data` to the temporary name `.<final_name>.part` and check its size.

        Raises `RemoteError` when the size on the server differs.
        """

    def write_part_file(self, directory: str, final_name: str, source: Path) -> None:
        """`write_part` for a local file, streamed (a document is never read whole)."""

    def rename_part(self, directory: str, final_name: str) -> None:
        """Rename `.<final_name>.part` to `final_name`; never overwrite an existing file."""

    def remove(self, directory: str, name: str) -> None:
        """Remove a file; a file already gone is not an error."""

    def read_file(self, directory: str, name: str, *, max_bytes: int) -> bytes | None:
        """A small file whole (the marker), or None when there is none; `RemoteError` when it
        is larger than `max_bytes`."""

    def replace_file(self, directory: str, name: str, data: bytes) -> None:
        """Write `name` whole in place of any file of that name: written under a temporary
        dot-name, its size checked, then renamed over (atomically where the server can)."""

    def download(
        self,
        directory: str,
        name: str,
        dest: Path,
        *,
        max_bytes: int,
    ) -> tuple[int, str]:
        """Stream a file into `dest` (written whole or not at all); return (size, sha256 hex)."""

    def move(self, directory: str, name: str, to_directory: str) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool:
        """True once `close()` ran: the connection is spent and a new one is needed."""


ProgressCallback = Callable[[int], None]


class Renderer(Protocol):
    """Stampli's file layout, as the sync engine needs it.

    `stampli.render.TemplateRenderer` implements it.
    """

    def rows(
        self,
        obj: SourceObject,
        vendor_names: Mapping[int, str],
        bills: Mapping[int, Bill],
    ) -> list[tuple[str, ...]]:
        """The rows one object becomes (a bill: one per line); `RenderError` if it cannot."""

    def content_hash(self, rows: Sequence[tuple[str, ...]]) -> str: ...

    def version_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        """Whether an object changed: its own data, not the cells borrowed from its vendor."""

    def legacy_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        """The hash an earlier release stored for the same rows (an upgrade re-sends nothing)."""

    def stamp(
        self, kind: Kind, rows: Sequence[tuple[str, ...]], *, action: str, version: int
    ) -> tuple[tuple[str, ...], ...]:
        """The rows with their Action and Version cells filled in."""

    @property
    def resends_on_rename(self) -> bool:
        """A vendor rename re-sends its bills and payments (template `resend_on_rename`)."""

    @property
    def zip_limit(self) -> int | None:
        """The ZIP layout's largest ZIP in bytes (template `documents = "zip"`); None when
        bills' documents go as files of their own."""

    def file_bytes(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> bytes: ...

    def file_name(
        self, kind: Kind, *, business: str, created_at: datetime, batch_id: int
    ) -> str: ...
