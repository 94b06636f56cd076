"""reconcile and pull-stampli at scale, over a real encrypted store.

Reconcile: 50,000 FreshBooks bills (20,000 paid) as push's snapshots, against
100,000 stored Stampli export rows (40,000 captures, 20,000 approvals, 40,000
payments). Prints the pure matcher's time, a first reconcile (facts read from
the store a range at a time, matched, every outcome and audit row written), a
second with nothing changed (nothing written), a reconcile's peak Python memory
(tracemalloc), and the process's peak RSS. Pull: a 200,000-row payment export parsed and stored through
the real pull engine; prints rows per second. Targets: reconcile under 5 s and
under 300 MB. Asserts nothing. Run: python bench/bench_reconcile.py [bills] [rows]
"""

import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.clock import SystemClock, to_utc_text  # noqa: E402
from fbstampli.config import PullSettings, ReconcileSettings, Settings  # noqa: E402
from fbstampli.models import Bill, BillPayment, ExportKind, StampliRecord, kind_of  # noqa: E402
from fbstampli.report import RunReport  # noqa: E402
from fbstampli.stampli.template import load_template  # noqa: E402
from fbstampli.store import Store  # noqa: E402
from fbstampli.store.keys import KeySource, StateKey, new_key_hex  # noqa: E402
from fbstampli.store.snapshots import payload_of  # noqa: E402
from fbstampli.sync import matching  # noqa: E402
from fbstampli.sync.connection import Connection  # noqa: E402
from fbstampli.sync.ports import BillSource, RemoteFile  # noqa: E402
from fbstampli.sync.pull import PullContext, pull, record_json  # noqa: E402
from fbstampli.sync.reconcile_inputs import version_cells  # noqa: E402

# FBSTAMPLI_BENCH_NO_VERSIONS=1: the same run without reading the versions sent (#28's cost).
CELLS = (
    None if os.environ.get("FBSTAMPLI_BENCH_NO_VERSIONS") else version_cells(load_template(None))
)
from fbstampli.sync.reconcile import reconcile_state  # noqa: E402

T = TypeVar("T")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def timed(label: str, work: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = work()
    print(f"{label:<48} {time.perf_counter() - started:8.2f} s")
    return result


def peak_python_mb(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bills_of(count: int) -> list[Bill]:
    return [
        Bill(
            fb_id=n,
            vendor_id=n % 500,
            bill_number=f"INV-{n}",
            issue_date=date(2026, 11, 1),
            due_date=date(2026, 12, 1),
            currency_code="USD" if n % 10 else "CAD",
            amount=Decimal("100.00"),
            tax_amount=Decimal(0),
            total_amount=Decimal("100.00"),
            outstanding=Decimal("100.00"),
            paid=Decimal(0),
            status="unpaid",
        )
        for n in range(1, count + 1)
    ]


def snapshot(store: Store, bills: list[Bill], payments: list[BillPayment]) -> None:
    """push-bills' snapshots of the bills and payments: reconcile's FreshBooks side."""
    at = store.now_text()
    with store.transaction():
        store.execute_many(
            "INSERT INTO source_objects (kind, fb_id, updated_at, vis_state, content_hash, "
            "payload, seen_at) VALUES (?, ?, NULL, 0, 'h', ?, ?)",
            [(kind_of(o).value, o.fb_id, payload_of(o), at) for o in [*bills, *payments]],
        )


def no_requests() -> BillSource:
    raise AssertionError("every bill Stampli names was read: FreshBooks is not asked")


def stampli_rows(bill_count: int, rows: int) -> list[StampliRecord]:
    """Captures for 40%, approvals for 20%, payments for 40% of `rows`, over the bills."""
    out: list[StampliRecord] = []
    for index in range(rows):
        bill_id = index % bill_count + 1
        invoice = f"STP-{bill_id:06d}"
        share = index * 10 // rows
        if share < 4:
            out.append(
                StampliRecord(
                    ExportKind.CAPTURE,
                    invoice,
                    bill_id,
                    "captured",
                    amount=Decimal("100.00"),
                    currency_code="USD",
                )
            )
        elif share < 6:
            moment = NOW - timedelta(days=index % 20)
            out.append(
                StampliRecord(ExportKind.APPROVAL, invoice, bill_id, "approved", occurred_at=moment)
            )
        else:
            out.append(
                StampliRecord(
                    ExportKind.PAYMENT,
                    invoice,
                    bill_id,
                    "paid",
                    payment_id=f"P{index}",
                    amount=Decimal("100.00") if index % 7 else Decimal("99.00"),
                )
            )
    return out


# A sent bill's rows as the default template writes them: one line, 44 cells, the total and
# currency where reconcile reads a version's total (#28).
_CELLS = ["x"] * 44
_CELLS[10], _CELLS[7] = "100.00", "USD"
SENT_ROWS = json.dumps([_CELLS])


def fill(store: Store, records: list[StampliRecord]) -> None:
    with store.transaction():
        file_id = store.execute(
            "INSERT INTO stampli_files (name, sha256, state, downloaded_at) "
            "VALUES ('bench.csv', 'x', 'processed', ?)",
            (store.now_text(),),
        )
        store.execute_many(
            "INSERT INTO stampli_records (file_id, line, export_kind, stampli_invoice_id, "
            "fb_bill_id, status, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    file_id,
                    i,
                    r.export_kind.value,
                    r.stampli_invoice_id,
                    r.fb_bill_id,
                    r.status,
                    record_json(r),
                )
                for i, r in enumerate(records)
            ],
        )
        at = to_utc_text(NOW - timedelta(days=3))
        store.execute_many(
            "INSERT INTO deliveries (kind, fb_id, content_hash, rows, status, created_at, "
            "updated_at) VALUES ('bill', ?, 'h', ?, 'delivered', ?, ?)",
            [(n, SENT_ROWS, at, at) for n in range(1, BILLS + 1)],
        )


class FolderTransport:
    """A local folder standing in for the outbound directory (no network in a bench)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def list_files(self, directory: str) -> list[RemoteFile]:
        return [
            RemoteFile(p.name, p.stat().st_size, datetime.fromtimestamp(p.stat().st_mtime, UTC))
            for p in sorted((self.root / directory).iterdir())
        ]

    def download(self, directory: str, name: str, dest: Path, *, max_bytes: int) -> tuple[int, str]:
        digest = hashlib.sha256()
        with (self.root / directory / name).open("rb") as source, dest.open("wb") as sink:
            while block := source.read(1 << 20):
                digest.update(block)
                sink.write(block)
        return dest.stat().st_size, digest.hexdigest()

    def move(self, directory: str, name: str, to_directory: str) -> None:
        raise NotImplementedError


BILLS = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
ROWS = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
PULL_ROWS = 200_000


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="fbstampli-bench-"))
    try:
        store = Store.create(
            work / "state.db", StateKey(new_key_hex(), KeySource.FILE), SystemClock()
        )
        bills = bills_of(BILLS)
        payments = [
            BillPayment(n, n, Decimal("100.00"), "", date(2026, 11, 20))
            for n in range(1, BILLS + 1)
            if n % 5 < 2
        ]
        records = stampli_rows(BILLS, ROWS)
        print(
            f"reconcile: {BILLS:,} bills, {len(payments):,} FreshBooks payments, "
            f"{ROWS:,} Stampli rows"
        )
        timed("  store the Stampli rows (setup)", lambda: fill(store, records))
        timed("  store the FreshBooks snapshots (setup)", lambda: snapshot(store, bills, payments))

        facts = {
            b.fb_id: matching.BillFacts(b.fb_id, b.currency_code, b.total_amount) for b in bills
        }
        fb = {p.bill_id: [matching.Money(p.amount, "USD")] for p in payments}
        stampli = {
            n: matching.StampliFacts(captured=True, payments=(matching.Money(Decimal(100), "USD"),))
            for n in range(1, BILLS + 1, 2)
        }
        delivered = dict.fromkeys(facts, NOW - timedelta(days=3))

        def pure() -> object:
            return matching.reconcile(
                facts,
                fb,
                stampli,
                [],
                delivered,
                now=NOW,
                approved_unpaid_days=7,
                uncaptured_hours=24,
            )

        results = timed("  pure matcher (classify every bill)", pure)
        print(f"  {'pure matcher peak Python memory':<46} {peak_python_mb(pure):8.1f} MB")

        report = RunReport("reconcile")

        def whole(run_id: int, days: int = 7) -> Callable[[], None]:
            settings = ReconcileSettings(approved_unpaid_days=days)
            return lambda: reconcile_state(
                store, no_requests, settings, now=NOW, run_id=run_id, report=report, cells=CELLS
            )

        timed("  first reconcile (every outcome written)", whole(1))
        timed("  next reconcile (nothing changed, nothing written)", whole(2))
        # Other settings: every bill classified again, as the daily full pass does.
        full = peak_python_mb(whole(3, days=8))
        print(f"  {'peak Python memory of a full pass':<46} {full:8.1f} MB")
        print(
            f"  results: {len(results):,} bills; "
            + ", ".join(f"{k} {v // 3:,}" for k, v in sorted(report.counts.items()))
        )
        print(f"  {'process peak RSS so far':<46} {rss_mb():8.1f} MB")

        outbound = work / "sftp" / "outbound"
        outbound.mkdir(parents=True)
        header = "Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,Currency\r\n"
        with (outbound / "stampli_payment_bench.csv").open("w", encoding="utf-8") as out:
            out.write(header)
            for i in range(PULL_ROWS):
                bill_id = i % BILLS + 1
                out.write(f"STP-{bill_id:06d},{bill_id},PAY-{i},2026-11-24,100.00,USD\r\n")
        size = (outbound / "stampli_payment_bench.csv").stat().st_size
        context = PullContext(
            template=load_template(None),
            settings=Settings(pull=PullSettings(max_file_mb=1024)),
            folder=work / "home" / "stampli",
            quarantine=work / "home" / "stampli" / "quarantine",
            run_id=None,
        )
        pulled = RunReport("pull-stampli")
        started = time.perf_counter()
        folder = FolderTransport(work / "sftp")
        pull(store, Connection(lambda: folder), context, pulled)  # type: ignore[arg-type, return-value]
        elapsed = time.perf_counter() - started
        print(
            f"pull: {PULL_ROWS:,} payment rows ({size / 1e6:.1f} MB) in {elapsed:.2f} s = "
            f"{PULL_ROWS / elapsed:,.0f} rows/s; counts {pulled.counts}"
        )
        print(f"process peak RSS {rss_mb():.1f} MB")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
