"""push-bills at scale against the FreshBooks sandbox with added latency.

10,000 bills + 1,000 vendors + 5,000 bill payments, 20 ms added to every
FreshBooks request. Prints, for the first sync, a no-change sync (the
incremental pass: newest first, stopping at the watermark) and a no-change
full sweep (every page, deleted objects too): requests
per kind (and the ceil(N/100) target), SFTP files written, wall time and peak
memory of the fbstampli process; beside it a naive baseline that lists bill
ids and fetches each bill by id (measured on a sample, extrapolated, and said
so). Asserts nothing. Run: python bench/bench_push.py [bills] [vendors] [payments]

With `--reality sort-ignored,lines-omitted` (any names `fbstampli sandbox
freshbooks --reality` takes), the same runs, plus a sync after 10 bills
changed, go once against the sandbox as written and once acting out those
behaviours, and each run's requests are printed side by side with the extra
the fallbacks cost.
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402

LATENCY = 0.020
MEASURED = (
    "import resource, sys, runpy\n"
    "sys.argv = ['fbstampli'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('fbstampli', run_name='__main__')\n"
    "except SystemExit as stop:\n"
    "    code = stop.code\n"
    "print(f'maxrss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} exit={code}', file=sys.stderr)\n"
)


def connect(home: Path, fb: FreshBooksSandbox, sftp: SftpServer) -> Options:
    options = Options(home=home, env={})
    connect_home(options, fb, sftp, business="bench")
    return options


def measured_run(home: Path, *args: str) -> tuple[float, float, str]:
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
    return elapsed, int(fields["maxrss_kb"]) / 1024, fields["exit"]


def requests_by_kind(fb: FreshBooksSandbox) -> dict[str, int]:
    return {
        kind: fb.count("GET", f"{kind}.list") for kind in ("bill_vendors", "bills", "bill_payments")
    }


def all_requests(fb: FreshBooksSandbox) -> dict[str, int]:
    """Every FreshBooks GET by kind, by-id fetches included (what a fallback adds)."""
    kinds = (
        "bill_vendors.list",
        "bills.list",
        "bill_payments.list",
        "bills.get",
        "bill_vendors.get",
    )
    return {kind: fb.count("GET", kind) for kind in kinds}


CHANGED = 10  # bills edited before the "changed sync" of a reality comparison


def reality_runs(
    bills: int, vendors: int, payments: int, realities: str, folder: Path
) -> list[tuple[str, dict[str, int], float]]:
    """(run, requests by kind, seconds) for first sync, no-change sync, changed sync, sweep."""
    root = folder / f"sftp-{realities or 'none'}"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    rows = []
    with (
        FreshBooksSandbox(latency=LATENCY, realities=realities) as fb,
        SftpServer(root) as sftp,
    ):
        fb.seed(vendors=vendors, bills=bills, payments=payments, seed=3)
        home = folder / f"home-{realities or 'none'}"
        connect(home, fb, sftp)
        oldest = sorted(fb.data.bills)[:CHANGED]
        runs = (
            ("first sync", (), ()),
            ("no-change sync", (), ()),
            (f"{CHANGED} old bills changed", (), oldest),
            ("no-change sweep", ("--full",), ()),
        )
        for label, flags, edits in runs:
            for bill_id in edits:
                fb.update_bill(bill_id, bill_number=f"EDITED-{bill_id}")
            fb.reset_counters()
            seconds, _, _ = measured_run(home, "push-bills", *flags)
            rows.append((label, all_requests(fb), seconds))
    return rows


def compare_realities(bills: int, vendors: int, payments: int, realities: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-bench-"))
    try:
        normal = reality_runs(bills, vendors, payments, "", folder)
        acted = reality_runs(bills, vendors, payments, realities, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(
        f"data: {vendors} vendors, {bills} bills, {payments} payments; "
        f"{LATENCY * 1000:.0f} ms per request; reality: {realities}"
    )
    for (label, usual, usual_s), (_, fallback, fallback_s) in zip(normal, acted, strict=True):
        extra = {k: fallback[k] - usual[k] for k in usual if fallback[k] != usual[k]}
        print(
            f"{label:22s} requests {sum(usual.values()):5d} as assumed, "
            f"{sum(fallback.values()):5d} under {realities} "
            f"(+{sum(fallback.values()) - sum(usual.values())}: {extra})  "
            f"wall {usual_s:5.1f} s vs {fallback_s:5.1f} s"
        )


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


def main() -> None:
    argv = sys.argv[1:]
    realities = ""
    if "--reality" in argv:
        at = argv.index("--reality")
        realities = argv[at + 1]
        del argv[at : at + 2]
    bills, vendors, payments = (int(a) for a in ([*argv, "10000", "1000", "5000"])[:3])
    if realities:
        compare_realities(bills, vendors, payments, realities)
        return
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-bench-"))
    root = folder / "sftp"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    try:
        with FreshBooksSandbox(latency=LATENCY) as fb, SftpServer(root) as sftp:
            fb.seed(vendors=vendors, bills=bills, payments=payments, seed=3)
            live = {
                "bill_vendors": sum(
                    1 for v in fb.data.vendors.values() if v.get("vis_state", 0) != 1
                ),
                "bills": sum(1 for b in fb.data.bills.values() if b.get("vis_state", 0) != 1),
                "bill_payments": sum(
                    1 for p in fb.data.payments.values() if p.get("vis_state", 0) != 1
                ),
            }
            home = folder / "home"
            connect(home, fb, sftp)
            rows = []
            runs = (
                ("first sync", ()),
                ("no-change sync", ()),  # the incremental pass cron runs every 15 minutes
                ("no-change sweep", ("--full",)),  # the periodic safety net
            )
            for label, flags in runs:
                fb.reset_counters()
                seconds, peak_mb, code = measured_run(home, "push-bills", *flags)
                counts = requests_by_kind(fb)
                files = len(list((root / "inbound").iterdir()))
                rows.append((label, counts, seconds, peak_mb, files, code))
            naive_requests, naive_seconds = naive_baseline(fb, bills, sample=300)

        print(
            f"data: {vendors} vendors, {bills} bills, {payments} payments; {LATENCY * 1000:.0f} ms per request"
        )
        print(
            "target per kind: ceil(live/100) list requests =",
            {k: math.ceil(v / 100) for k, v in live.items()},
        )
        for label, counts, seconds, peak_mb, files, code in rows:
            total = sum(counts.values())
            print(
                f"{label:15s} exit {code}  requests {total:4d} {counts}  "
                f"files in inbound {files}  wall {seconds:6.2f} s  peak RSS {peak_mb:6.1f} MB"
            )
        first_total = sum(rows[0][1].values())
        print(
            f"naive baseline  requests {naive_requests:5d} (bills only)  wall ~{naive_seconds:6.1f} s "
            f"(timed on 300 bills, extrapolated)"
        )
        print(
            f"ratio           requests {naive_requests / max(1, rows[0][1]['bills']):.0f}x fewer for bills; "
            f"first sync {first_total} requests for all three kinds"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
