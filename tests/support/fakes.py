"""In-memory stand-ins for the edges, for fast tests of the sync engine's logic.

The end-to-end tests use the real servers; these exist so a journal state or
a fault can be set up exactly and cheaply.
"""

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from fbstampli.errors import RemoteError, RemoteUnavailableError
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
from fbstampli.models.remote import RemoteFile, part_name, temporary_name

T = TypeVar("T", Vendor, Bill)

DEFAULT_MOMENT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


class FakeClock:
    """A clock that moves only when told to; `sleep` is recorded, or refused where a component
    must never wait (`may_sleep=False`), so that a stray sleep fails the test."""

    def __init__(self, moment: datetime = DEFAULT_MOMENT, *, may_sleep: bool = True) -> None:
        self.moment = moment
        self.may_sleep = may_sleep
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return self.moment.timestamp()

    def sleep(self, seconds: float) -> None:
        if not self.may_sleep:
            raise AssertionError(f"slept {seconds} s where nothing may wait")
        self.slept.append(seconds)

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


BLOCK = 32 * 1024  # what one SFTP write request carries, so an upload grows its `.part` in steps


def _check_name(name: str) -> str:
    """The transport contract's rule for a remote file name: one plain path component."""
    if not name or name in (".", "..") or any(ch in name for ch in "/\\\x00"):
        raise RemoteError(f"refusing unsafe remote file name {name!r}")
    if any(ord(ch) < 0x20 for ch in name):
        raise RemoteError(f"refusing unsafe remote file name {name!r}")
    return name


def _check_directory(directory: str) -> str:
    """The transport contract's rule for a directory: never climbing with `..`."""
    if "\x00" in directory or "\\" in directory or ".." in directory.split("/"):
        raise RemoteError(f"refusing unsafe remote directory {directory!r}")
    return directory


@dataclass
class MemoryTransport:
    """A directory tree in a dict, with one-shot faults per operation.

    It keeps the transport contract the real servers keep (tests/contract runs it there):
    safe names only, `.part` uploads that grow block by block, renames and moves that never
    overwrite, capped downloads that leave the destination alone on refusal, and a closed
    or dropped connection answering every call with a temporary error. A fault queued with
    `fail` strikes before the operation; one queued with `fail_after` strikes after it took
    effect (a connection lost after the server renamed, before the client heard).
    """

    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    faults: dict[str, list[Exception]] = field(default_factory=dict)
    after_faults: dict[str, list[Exception]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    closed: bool = False
    has_posix_rename: bool = True
    # "block": called with the connection after each block an upload stores; it may wait
    # (a held upload) or close the connection and raise (a drop). Shared by every connection.
    hooks: dict[str, Callable[["MemoryTransport"], None]] = field(default_factory=dict)

    def fail(self, operation: str, error: Exception, times: int = 1) -> None:
        self.faults.setdefault(operation, []).extend([error] * times)

    def fail_after(self, operation: str, error: Exception, times: int = 1) -> None:
        self.after_faults.setdefault(operation, []).extend([error] * times)

    def connection(self) -> "MemoryTransport":
        """A new connection to the same server: the same folders, faults, hooks and call log,
        its own closed state; what a transport factory hands out for each run."""
        return replace(self, closed=False)

    def _step(self, operation: str, name: str) -> None:
        self.calls.append((operation, name))
        if self.closed:
            raise RemoteUnavailableError("memory transport connection is closed")
        queue = self.faults.get(operation)
        if queue:
            raise queue.pop(0)

    def _after(self, operation: str) -> None:
        queue = self.after_faults.get(operation)
        if queue:
            raise queue.pop(0)

    def folder(self, directory: str) -> dict[str, bytes]:
        return self.files.setdefault(directory, {})

    def _existing(self, directory: str, name: str) -> bytes:
        data = self.files.get(_check_directory(directory), {}).get(_check_name(name))
        if data is None:
            raise RemoteError(f"memory server: cannot open {directory}/{name}: no such file")
        return data

    def list_files(self, directory: str) -> list[RemoteFile]:
        self._step("list", _check_directory(directory))
        listed = [
            RemoteFile(n, len(d), DEFAULT_MOMENT) for n, d in sorted(self.folder(directory).items())
        ]
        self._after("list")
        return listed

    def exists(self, directory: str, name: str) -> bool:
        _check_directory(directory)
        self._step("exists", _check_name(name))
        return name in self.folder(directory)

    def write_part(self, directory: str, final_name: str, data: bytes) -> None:
        _check_directory(directory)
        self._step("write_part", _check_name(final_name))
        folder, part = self.folder(directory), part_name(final_name)
        folder[part] = b""
        for start in range(0, max(len(data), 1), BLOCK):
            folder[part] += data[start : start + BLOCK]
            if "block" in self.hooks:
                self.hooks["block"](self)
        self._after("write_part")

    def write_part_file(self, directory: str, final_name: str, source: Path) -> None:
        self.write_part(directory, final_name, source.read_bytes())

    def rename_part(self, directory: str, final_name: str) -> None:
        _check_directory(directory)
        self._step("rename", _check_name(final_name))
        folder = self.folder(directory)
        if final_name in folder:
            raise RemoteError(f"{final_name} already exists; refusing to overwrite it")
        if part_name(final_name) not in folder:
            raise RemoteError(f"cannot rename {part_name(final_name)}: no such file")
        folder[final_name] = folder.pop(part_name(final_name))
        self._after("rename")

    def remove(self, directory: str, name: str) -> None:
        _check_directory(directory)
        self._step("remove", _check_name(name))
        self.folder(directory).pop(name, None)
        self._after("remove")

    def read_file(self, directory: str, name: str, *, max_bytes: int) -> bytes | None:
        _check_directory(directory)
        self._step("read", _check_name(name))
        data = self.folder(directory).get(name)
        if data is not None and len(data) > max_bytes:
            raise RemoteError(f"{name} is larger than {max_bytes} bytes; not ours to read")
        return data

    def replace_file(self, directory: str, name: str, data: bytes) -> None:
        _check_directory(directory)
        self._step("replace", _check_name(name))
        folder, temporary = self.folder(directory), temporary_name(name)
        folder[temporary] = data
        self._after("replace")
        folder[name] = folder.pop(temporary)

    def download(self, directory: str, name: str, dest: Path, *, max_bytes: int) -> tuple[int, str]:
        _check_directory(directory)
        self._step("download", _check_name(name))
        data = self._existing(directory, name)
        if len(data) > max_bytes:
            raise RemoteError(f"{name} is larger than the {max_bytes}-byte limit; not downloaded")
        partial = dest.with_name(f".{dest.name}.download")
        partial.write_bytes(data)
        partial.replace(dest)
        return len(data), hashlib.sha256(data).hexdigest()

    def move(self, directory: str, name: str, to_directory: str) -> None:
        _check_directory(directory)
        _check_directory(to_directory)
        self._step("move", _check_name(name))
        if name not in self.folder(directory):
            raise RemoteError(f"cannot move {directory}/{name}: no such file")
        if name in self.folder(to_directory):
            raise RemoteError(f"{to_directory}/{name} already exists; refusing to overwrite it")
        self.folder(to_directory)[name] = self.folder(directory).pop(name)
        self._after("move")

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "MemoryTransport":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ListSource:
    """A FreshBooks account as plain lists."""

    vendors: list[Vendor] = field(default_factory=list)
    bills: list[Bill] = field(default_factory=list)
    payments: list[BillPayment] = field(default_factory=list)
    # None plays a login without user:expenses:read.
    categories: list[ExpenseCategory] | None = field(default_factory=list)
    taxes: list[Tax] | None = field(default_factory=list)

    @staticmethod
    def _visible(
        items: Iterable[SourceObject], vis_state: VisState | None
    ) -> Iterator[SourceObject]:
        for item in items:
            deleted = item.vis_state == VisState.DELETED
            if (vis_state == VisState.DELETED) == deleted:
                yield item

    def list_vendors(self, *, vis_state: VisState | None = None) -> Iterator[Vendor]:
        yield from self._visible(self.vendors, vis_state)  # type: ignore[misc]

    def list_bills(self, *, vis_state: VisState | None = None) -> Iterator[Bill]:
        yield from self._visible(self.bills, vis_state)  # type: ignore[misc]

    def list_bill_payments(self, *, vis_state: VisState | None = None) -> Iterator[BillPayment]:
        yield from self._visible(self.payments, vis_state)  # type: ignore[misc]

    def bill_payments_of(
        self, bill_ids: Iterable[int], *, vis_state: VisState | None = None
    ) -> Iterator[BillPayment]:
        wanted = set(bill_ids)
        for payment in self.list_bill_payments(vis_state=vis_state):
            if payment.bill_id in wanted:
                yield payment

    @staticmethod
    def _newest_first(items: Iterator[T]) -> Iterator[list[T]]:
        """Pages of 100, newest `updated_at` first; undated objects last, as an API might."""
        undated = datetime.min.replace(tzinfo=UTC)
        ordered = sorted(
            items,
            key=lambda o: (o.updated_at is not None, o.updated_at or undated, o.fb_id),
            reverse=True,
        )
        for start in range(0, len(ordered), 100):
            yield ordered[start : start + 100]

    def recent_vendor_pages(self) -> Iterator[list[Vendor]]:
        yield from self._newest_first(self.list_vendors())

    def recent_bill_pages(self) -> Iterator[list[Bill]]:
        yield from self._newest_first(self.list_bills())

    def recent_deleted_vendor_pages(self) -> Iterator[list[Vendor]]:
        yield from self._newest_first(self.list_vendors(vis_state=VisState.DELETED))

    def recent_deleted_bill_pages(self) -> Iterator[list[Bill]]:
        yield from self._newest_first(self.list_bills(vis_state=VisState.DELETED))

    def get_vendors(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Vendor]:
        wanted = set(ids)
        return [v for v in self._visible(self.vendors, vis_state) if v.fb_id in wanted]

    def get_bills(self, ids: Iterable[int], *, vis_state: VisState | None = None) -> list[Bill]:
        wanted = set(ids)
        return [b for b in self._visible(self.bills, vis_state) if b.fb_id in wanted]

    def get_bill(self, bill_id: int) -> Bill | None:
        return next((b for b in self.bills if b.fb_id == bill_id), None)

    def list_expense_categories(self) -> list[ExpenseCategory] | None:
        return None if self.categories is None else list(self.categories)

    def list_taxes(self) -> list[Tax] | None:
        return None if self.taxes is None else list(self.taxes)

    def check_sort(self, resource: str, newest: datetime, oldest: datetime) -> None:
        """This fake always sorts as asked: nothing to learn."""


class SimpleRenderer:
    """A tiny fixed layout: enough to test planning and journaling without templates."""

    def rows(
        self, obj: SourceObject, vendor_names: Mapping[int, str], bills: Mapping[int, Bill]
    ) -> list[tuple[str, ...]]:
        if isinstance(obj, Vendor):
            return [(str(obj.fb_id), obj.name)]
        if isinstance(obj, Bill):
            return [(str(obj.fb_id), vendor_names.get(obj.vendor_id, ""), str(obj.total_amount))]
        if isinstance(obj, ExpenseCategory | Tax):
            return [(str(obj.fb_id), obj.name)]
        return [(str(obj.fb_id), str(obj.bill_id), str(obj.amount))]

    def content_hash(self, rows: Sequence[tuple[str, ...]]) -> str:
        return hashlib.sha256(repr(list(rows)).encode()).hexdigest()

    resends_on_rename = True  # the vendor name is part of a bill's version here
    zip_limit: int | None = None  # documents as files of their own

    def version_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        return self.content_hash(rows)

    def legacy_hash(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> str:
        return self.content_hash(rows)

    def stamp(
        self, kind: Kind, rows: Sequence[tuple[str, ...]], *, action: str, version: int
    ) -> tuple[tuple[str, ...], ...]:
        return tuple(rows)

    def file_bytes(self, kind: Kind, rows: Sequence[tuple[str, ...]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        return buffer.getvalue().encode()

    def file_name(self, kind: Kind, *, business: str, created_at: datetime, batch_id: int) -> str:
        order, label = {
            Kind.CATEGORY: (0, "categories"),
            Kind.TAX: (0, "taxes"),
            Kind.VENDOR: (1, "vendors"),
            Kind.BILL: (2, "bills"),
            Kind.PAYMENT: (3, "payments"),
        }[kind]
        return (
            f"fbstampli_{business}_{created_at:%Y%m%dT%H%M%SZ}_b{batch_id:06d}_{order}-{label}.csv"
        )


def gone() -> RemoteUnavailableError:
    return RemoteUnavailableError("connection to sftp lost")
