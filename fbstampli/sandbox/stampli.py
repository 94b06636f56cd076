"""A Stampli stand-in: reads the invoice files fbstampli delivered, writes Stampli-like exports.

It works on the SFTP server's folder tree (`inbound/`, `outbound/`), reads our
bill files through the template's own column headers, and writes captures,
approval changes and payments in the template's export layouts, plus the
awkward cases a reconciliation must catch, and the things a real Stampli does to
files under us: re-uploading an export, renaming or deleting one, taking our
invoice files away. Deterministic for a given seed.
Used by `fbstampli demo` and the tests; not product code.
"""

from __future__ import annotations

import csv
import io
import random
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from fbstampli.models import ExportKind, Kind
from fbstampli.stampli.template import Template, load_template

DISTURBANCES = ("reupload", "reupload_renamed", "rename", "delete", "consume")


@dataclass(frozen=True, slots=True)
class InboundBill:
    fb_id: int
    invoice_number: str
    vendor_name: str
    total: Decimal
    currency: str


def bills_text(path: Path) -> str:
    """A bills file's text; in the ZIP layout, the bills file inside the ZIP (what the ZIP
    holds beside it are the documents its rows name)."""
    if not path.name.endswith(".zip"):
        return path.read_text(encoding="utf-8")
    with zipfile.ZipFile(path) as archive:
        (inner,) = [n for n in archive.namelist() if not n.startswith("fbstampli_document_")]
        return archive.read(inner).decode("utf-8")


class StampliSimulator:
    def __init__(
        self,
        root: Path,
        template: Template | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.root = root
        self.template = template or load_template(None)
        self.now = now
        self._sequence = 0
        self.exports: list[tuple[str, bytes]] = []  # (name, bytes) of every export written

    # -- reading what fbstampli sent ---------------------------------------------------------

    def _header_of(self, source: str) -> str:
        for column in self.template.layout(Kind.BILL).columns:
            if column.source == source:
                return column.header
        raise KeyError(f"the bill layout has no column for {source}")

    def inbound_bills(self) -> dict[int, InboundBill]:
        """The latest version of every bill in the inbound folder (and its archive)."""
        headers = {
            s: self._header_of(s)
            for s in ("fb_id", "bill_number", "vendor_name", "total_amount", "currency_code")
        }
        bills: dict[int, InboundBill] = {}
        folders = [self.root / "inbound", self.root / "archive"]
        files = sorted(
            p
            for f in folders
            if f.is_dir()
            for p in f.iterdir()
            if p.name.endswith(("-bills.csv", "-bills.zip"))
        )
        for path in files:
            for row in csv.DictReader(io.StringIO(bills_text(path))):
                bill_id = int(row[headers["fb_id"]])
                bills[bill_id] = InboundBill(
                    bill_id,
                    row[headers["bill_number"]],
                    row[headers["vendor_name"]],
                    Decimal(row[headers["total_amount"]]),
                    row[headers["currency_code"]],
                )
        return bills

    def consume_inbound(self) -> int:
        """Move delivered files to `archive/`, as a real importer would."""
        archive = self.root / "archive"
        archive.mkdir(exist_ok=True)
        moved = 0
        for path in sorted((self.root / "inbound").iterdir()):
            if not path.name.startswith("."):
                path.rename(archive / path.name)
                moved += 1
        return moved

    # -- writing exports -----------------------------------------------------------------------

    def invoice_id(self, bill_id: int) -> str:
        return f"STP-{bill_id:06d}"

    def _write(self, kind: ExportKind, values: Iterable[dict[str, str]]) -> Path:
        layout = self.template.export_layout(kind)
        if layout is None:
            raise KeyError(f"the template has no {kind.value} export")
        headers = [column.header for column in layout.columns]
        by_field = {column.field: column.header for column in layout.columns}
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(headers)
        for record in values:
            cells = {by_field[name]: text for name, text in record.items() if name in by_field}
            writer.writerow([cells.get(header, "") for header in headers])
        self._sequence += 1
        stamp = self.now().strftime("%Y%m%dT%H%M%S")
        name = f"stampli_{kind.value}_{stamp}_{self._sequence:03d}.csv"
        data = buffer.getvalue().encode("utf-8")
        self.exports.append((name, data))
        return self._publish(name, data)

    def _publish(self, name: str, data: bytes) -> Path:
        """Write under a dot-name, then rename: a reader never sees half an export."""
        outbound = self.root / "outbound"
        temporary = outbound / f".{name}.tmp"
        temporary.write_bytes(data)
        temporary.replace(outbound / name)
        return outbound / name

    def export_captures(self, bills: Sequence[InboundBill]) -> Path:
        return self._write(
            ExportKind.CAPTURE,
            (
                {
                    "stampli_invoice_id": self.invoice_id(b.fb_id),
                    "fb_bill_id": str(b.fb_id),
                    "status": "captured",
                    "vendor_name": b.vendor_name,
                    "invoice_number": b.invoice_number,
                    "amount": str(b.total),
                    "currency_code": b.currency,
                    "occurred_at": self.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
                for b in bills
            ),
        )

    def export_approvals(self, decisions: Sequence[tuple[InboundBill, str, datetime]]) -> Path:
        return self._write(
            ExportKind.APPROVAL,
            (
                {
                    "stampli_invoice_id": self.invoice_id(b.fb_id),
                    "fb_bill_id": str(b.fb_id),
                    "status": status,
                    "approver": "pat.controller@example.com",
                    "occurred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "invoice_number": b.invoice_number,
                }
                for b, status, when in decisions
            ),
        )

    def export_payments(self, payments: Sequence[tuple[InboundBill | int, Decimal, str]]) -> Path:
        """(bill or a bill id FreshBooks does not know, amount, currency) per payment."""
        rows = []
        for index, (bill, amount, currency) in enumerate(payments, start=1):
            bill_id = bill.fb_id if isinstance(bill, InboundBill) else bill
            rows.append(
                {
                    "stampli_invoice_id": self.invoice_id(bill_id),
                    "fb_bill_id": str(bill_id),
                    "payment_id": f"PAY-{self._sequence + 1:03d}-{index:04d}",
                    "payment_date": self.now().strftime("%Y-%m-%d"),
                    "amount": str(amount),
                    "currency_code": currency,
                    "payment_method": "ACH",
                    "status": "paid",
                }
            )
        return self._write(ExportKind.PAYMENT, rows)

    def write_malformed(self, kind: ExportKind = ExportKind.PAYMENT) -> Path:
        """A file that names itself an export but whose required column is missing."""
        self._sequence += 1
        path = self.root / "outbound" / f"stampli_{kind.value}_broken_{self._sequence:03d}.csv"
        path.write_text("Stampli Invoice ID,Amount\r\nSTP-1,not-a-number\r\n", encoding="utf-8")
        return path

    # -- meddling: what Stampli does to files while fbstampli works ---------------------------

    def outbound_exports(self) -> list[Path]:
        """The finished exports in the outbound folder now (not the ones being written)."""
        folder = self.root / "outbound"
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))

    def reupload(self, rng: random.Random, *, rename: bool) -> str | None:
        """An export written again, byte for byte: under its own name or a new one."""
        if not self.exports:
            return None
        name, data = rng.choice(self.exports)
        if rename:
            self._sequence += 1
            name = name.removesuffix(".csv") + f"_again{self._sequence:03d}.csv"
        self._publish(name, data)
        return name

    def rename_export(self, rng: random.Random) -> str | None:
        """An export in the outbound folder moved to another name (same bytes)."""
        present = self.outbound_exports()
        if not present:
            return None
        path = rng.choice(present)
        self._sequence += 1
        target = path.with_name(path.name.removesuffix(".csv") + f"_moved{self._sequence:03d}.csv")
        try:
            path.rename(target)
        except FileNotFoundError:  # our own archive move, or another meddler, came first
            return None
        return target.name

    def delete_export(self, rng: random.Random) -> str | None:
        """An export removed from the outbound folder (Stampli withdrew or expired it)."""
        present = self.outbound_exports()
        if not present:
            return None
        path = rng.choice(present)
        try:
            path.unlink()
        except FileNotFoundError:
            return None
        return path.name

    def disturb(self, rng: random.Random, kind: str | None = None) -> str | None:
        """One act of interference (`kind`, or a random one) on a random file; returns its kind,
        or None when there was nothing to do it to.

        Kinds (`DISTURBANCES`): "reupload" (same name, new mtime), "reupload_renamed",
        "rename", "delete", and "consume" (the importer takes our invoice files from inbound/).
        """
        kind = kind or rng.choice(DISTURBANCES)
        if kind not in DISTURBANCES:
            raise ValueError(f"unknown disturbance {kind!r}")
        if kind == "reupload":
            done: object = self.reupload(rng, rename=False)
        elif kind == "reupload_renamed":
            done = self.reupload(rng, rename=True)
        elif kind == "rename":
            done = self.rename_export(rng)
        elif kind == "delete":
            done = self.delete_export(rng)
        else:
            done = self.consume_inbound() or None
        return kind if done is not None else None
