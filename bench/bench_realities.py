"""What each FreshBooks fallback costs: the same runs as written and acting out behaviours.

The sandbox is seeded (default 1,000 bills, 100 vendors, 500 payments, 20 ms per
request); a first sync, a no-change sync, a sync after 10 bills changed and a
no-change full sweep go once against the sandbox as written and once acting out
the given behaviours (any names `fbstampli sandbox freshbooks --reality` takes),
and each run's FreshBooks requests are printed side by side with the extra the
fallbacks cost. Asserts nothing.

    python bench/bench_realities.py [bills] [vendors] [payments] [realities]
    python bench/bench_realities.py 1000 100 500 sort-ignored,lines-omitted
"""

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_push import measured_run  # noqa: E402 - the same child run, its own peak memory

from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402

LATENCY = 0.020


def connect(home: Path, fb: FreshBooksSandbox, sftp: SftpServer) -> Options:
    options = Options(home=home, env={})
    connect_home(options, fb, sftp, business="bench")
    return options


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
            seconds, _, _, _ = measured_run(home, "push-bills", *flags)
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


def main() -> None:
    argv = [*sys.argv[1:]]
    numbers = [a for a in argv if a.isdigit()]
    names = [a for a in argv if not a.isdigit()]
    bills, vendors, payments = (int(a) for a in ([*numbers, "1000", "100", "500"])[:3])
    compare_realities(bills, vendors, payments, names[0] if names else "sort-ignored,lines-omitted")


if __name__ == "__main__":
    main()
