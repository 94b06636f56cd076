"""push-bills at scale against the FreshBooks sandbox with added per-request latency.

For each size (objects = 10 bills : 1 vendor : 5 bill payments, so 16k is
10,000 bills, 1,000 vendors and 5,000 payments) and each latency, runs the real
CLI in a child process and prints, for

- the first sync,
- a no-change run (the 15-minute cron pass),
- a no-change full sweep (every page, deleted objects too),
- a reconcile of every bill, its whole report written as JSON,
- a no-change `sync` (push, pull and reconcile: what cron runs every 15 minutes),
- a run after 10 payments were added and 5 edited (and whether all 15 arrived),

the list requests per kind, the wall time beside the latency floor (list and
get requests x latency: what the run would cost if FreshBooks answered
instantly but the network did not), and the peak RSS of the fbstampli process.
Asserts nothing.

    python bench/bench_push.py                         # 16k at 20 ms
    python bench/bench_push.py --sizes 16k,64k,250k --latency-ms 20,200
    python bench/bench_push.py --naive                 # plus the list-then-get-each baseline
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402

KINDS = ("bill_vendors", "bills", "bill_payments")
MEASURED = (
    "import resource, sys, runpy\n"
    "sys.argv = ['fbstampli'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('fbstampli', run_name='__main__')\n"
    "except SystemExit as stop:\n"
    "    code = stop.code\n"
    "use = resource.getrusage(resource.RUSAGE_SELF)\n"
    # ru_maxrss is not this process's own peak on Linux: a vfork+exec child inherits the
    # parent's high-water mark (here the bench and its sandbox). VmHWM is its own.
    "peak = use.ru_maxrss\n"
    "try:\n"
    "    peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
    "except (OSError, StopIteration):\n"
    "    pass\n"
    "print(f'maxrss_kb={peak} cpu={use.ru_utime + use.ru_stime:.2f} exit={code}', file=sys.stderr)\n"
)


@dataclass
class Row:
    label: str
    counts: dict[str, int]
    requests: int  # every FreshBooks request, lists and gets
    seconds: float
    cpu: float  # the fbstampli process's own CPU seconds: wall less waiting and contention
    peak_mb: float
    code: str
    note: str = ""


def parse_size(text: str) -> int:
    text = text.strip().lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1000)
    return int(text)


def split(objects: int) -> tuple[int, int, int]:
    """(vendors, bills, payments) in the 1 : 10 : 5 mix of the original bench."""
    unit = objects / 16
    return round(unit), round(unit * 10), round(unit * 5)


def measured_run(home: Path, *args: str) -> tuple[float, float, float, str]:
    env = {**os.environ, "FBSTAMPLI_HOME": str(home), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    tail = done.stderr.strip().splitlines()[-1]
    fields = dict(part.split("=") for part in tail.split())
    if fields.get("exit") not in ("0", "None"):
        print(done.stderr, file=sys.stderr)
    return elapsed, float(fields["cpu"]), int(fields["maxrss_kb"]) / 1024, fields["exit"]


def counts_of(fb: FreshBooksSandbox) -> tuple[dict[str, int], int]:
    counts = {kind: fb.count("GET", f"{kind}.list") for kind in KINDS}
    everything = sum(1 for record in fb.requests if record.kind != "token")
    return counts, everything


def payment_rows(inbound: Path, before: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted(inbound.iterdir()):
        if path.name not in before and path.name.endswith("-payments.csv"):
            rows.extend(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    return rows


def change_payments(fb: FreshBooksSandbox) -> tuple[set[str], set[str]]:
    """Add 10 payments to bills that owe money and edit 5 existing ones; their ids."""
    data = fb.data
    added: set[str] = set()
    for bill_id, bill in sorted(data.bills.items(), reverse=True):
        if len(added) == 10:
            break
        _, _, total, paid = data.bill_totals(bill)
        if bill["vis_state"] == 0 and total - paid > Decimal(2):
            added.add(str(fb.create_payment(bill_id, amount="1.00", note="bench added")))
    live = sorted(i for i, p in data.payments.items() if p["vis_state"] == 0)
    edited = {str(i) for i in live[:5]}
    for payment_id in live[:5]:
        fb.update_payment(payment_id, note="bench edited")
    return added, edited


def bench(objects: int, latency: float, naive: bool, show: Callable[[Row], None]) -> list[Row]:
    vendors, bills, payments = split(objects)
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-bench-"))
    root = folder / "sftp"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    rows: list[Row] = []
    try:
        with FreshBooksSandbox(latency=latency) as fb, SftpServer(root) as sftp:
            started = time.perf_counter()
            fb.seed(vendors=vendors, bills=bills, payments=payments, seed=3)
            seeded = time.perf_counter() - started
            print(
                f"  seeded {vendors} vendors, {bills} bills, {len(fb.data.payments)} payments "
                f"in {seeded:.0f} s",
                flush=True,
            )
            print(HEADER, flush=True)
            home = folder / "home"
            connect_home(Options(home=home, env={}), fb, sftp, business="bench")
            report = str(folder / "reconcile.json")
            for label, command in (
                ("first sync", ("push-bills",)),
                ("no-change run", ("push-bills",)),  # the incremental pass alone
                ("no-change sweep", ("push-bills", "--full")),  # the periodic safety net
                ("reconcile", ("reconcile", "--format", "json", "--output", report)),
                ("no-change sync", ("sync",)),  # what cron runs: push, pull, reconcile
            ):
                fb.reset_counters()
                seconds, cpu, peak_mb, code = measured_run(home, *command)
                counts, everything = counts_of(fb)
                rows.append(Row(label, counts, everything, seconds, cpu, peak_mb, code))
                show(rows[-1])
            added, edited = change_payments(fb)
            before = {path.name for path in (root / "inbound").iterdir()}
            fb.reset_counters()
            seconds, cpu, peak_mb, code = measured_run(home, "push-bills")
            counts, everything = counts_of(fb)
            got = {row["FreshBooks Payment ID"] for row in payment_rows(root / "inbound", before)}
            note = (
                f"added {len(added & got)}/10, edited {len(edited & got)}/5 delivered; "
                f"{len(got - added - edited)} other payment rows"
            )
            rows.append(
                Row("+10/~5 payments", counts, everything, seconds, cpu, peak_mb, code, note)
            )
            show(rows[-1])
            if naive:
                requests, wall = naive_baseline(fb, bills, sample=300)
                print(f"  naive baseline: {requests} requests, ~{wall:.0f} s (extrapolated)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def naive_baseline(fb: FreshBooksSandbox, bills: int, sample: int) -> tuple[int, float]:
    """List ids, then GET each bill by id (the usual first attempt); timed on a sample."""
    import requests

    token = fb.auth._issue_pair("user:bills:read")["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{fb.url}/accounting/account/{fb.account_id}/bills/bills"
    ids = sorted(fb.data.bills)[:sample]
    started = time.perf_counter()
    for bill_id in ids:
        session.get(f"{base}/{bill_id}", timeout=30).raise_for_status()
    per_bill = (time.perf_counter() - started) / len(ids)
    list_pages = math.ceil(bills / 100)
    return bills + list_pages, per_bill * bills + list_pages * per_bill


HEADER = (
    f"{'run':16s} {'exit':>4s} {'vendors':>7s} {'bills':>6s} {'payments':>8s} "
    f"{'all req':>7s} {'wall s':>7s} {'cpu s':>6s} {'floor s':>7s} {'x floor':>7s} "
    f"{'peak RSS':>9s}"
)


def show(row: Row, latency: float) -> None:
    """One line per run, printed as soon as it is measured (a long size can be cut short)."""
    floor = row.requests * latency
    ratio = f"{row.seconds / floor:7.2f}" if floor else "      -"
    c = row.counts
    print(
        f"{row.label:16s} {row.code:>4s} {c['bill_vendors']:7d} {c['bills']:6d} "
        f"{c['bill_payments']:8d} {row.requests:7d} {row.seconds:7.2f} {row.cpu:6.2f} "
        f"{floor:7.2f} {ratio} {row.peak_mb:6.0f} MB" + (f"  {row.note}" if row.note else ""),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="16k", help="objects per account, e.g. 16k,64k,250k")
    parser.add_argument("--latency-ms", default="20", help="added per request, e.g. 20,200")
    parser.add_argument("--naive", action="store_true", help="also time list-then-get-each")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    latencies = [float(ms) / 1000 for ms in args.latency_ms.split(",")]
    for objects in sizes:
        for latency in latencies:
            print(f"== {objects:,} objects, {latency * 1000:.0f} ms per request", flush=True)
            bench(objects, latency, args.naive, lambda row, latency=latency: show(row, latency))
            print(flush=True)


if __name__ == "__main__":
    main()
