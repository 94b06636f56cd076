"""The daily digest and the reconcile report for people, at scale, over a real encrypted store.

The state of bench_reconcile.py (50,000 bills, 20,000 paid in FreshBooks, 100,000 Stampli
rows), reconciled once; then: the digest collected from the state (funnel, exceptions with
their bills, stuck deliveries), its text and HTML rendered, and every row of the reconcile
report for people (bill, vendor, each side's payments, dates, why) streamed, beside the
bare outcomes the report streamed before. Asserts nothing.
Run: python bench/bench_digest.py [bills] [rows]
"""

import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from bench_reconcile import (
    BILLS,
    NOW,
    ROWS,
    bills_of,
    fill,
    no_requests,
    rss_mb,
    snapshot,
    stampli_rows,
    timed,
)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.clock import Clock, SystemClock  # noqa: E402
from fbstampli.config import ReconcileSettings, Settings  # noqa: E402
from fbstampli.digest import render_html, render_text  # noqa: E402
from fbstampli.models import BillPayment  # noqa: E402
from fbstampli.reconcile_rows import report_row  # noqa: E402
from fbstampli.report import RunReport  # noqa: E402
from fbstampli.services.digest import collect  # noqa: E402
from fbstampli.store import Store  # noqa: E402
from fbstampli.store.keys import KeySource, StateKey, new_key_hex  # noqa: E402
from fbstampli.store.reconcile_report import report_rows  # noqa: E402
from fbstampli.store.reconciliations import current_outcomes  # noqa: E402
from fbstampli.sync.reconcile import VOID_STATUSES, reconcile_state  # noqa: E402


class FixedClock:
    def now(self):  # type: ignore[no-untyped-def]
        return NOW


@dataclass
class JustTheState:
    """What `collect` reads of a Runtime."""

    store: Store
    settings: Settings
    clock: Clock


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
        fill(store, stampli_rows(BILLS, ROWS))
        snapshot(store, bills, payments)
        print(f"digest: {BILLS:,} bills, {len(payments):,} FreshBooks payments, {ROWS:,} rows")
        timed(
            "  first reconcile (setup)",
            lambda: reconcile_state(
                store,
                no_requests,
                ReconcileSettings(),
                now=NOW,
                run_id=1,
                report=RunReport("r"),
            ),
        )
        import fbstampli.store.credentials  # noqa: F401 - imported before timing, as the CLI has

        state = JustTheState(store, Settings(), FixedClock())  # type: ignore[arg-type]
        digest = timed("  collect the digest from the state", lambda: collect(state))  # type: ignore[arg-type]
        print(f"  funnel {dict(digest.funnel)}, {digest.attention:,} need attention")
        timed("  render its text and HTML", lambda: (render_text(digest), render_html(digest)))
        before = timed(
            "  report: bare outcomes, as before", lambda: sum(1 for _ in current_outcomes(store))
        )
        after = timed(
            "  report: rows for people (bill, payments, why)",
            lambda: sum(
                1 for _ in (report_row(dict(r)) for r in report_rows(store, VOID_STATUSES))
            ),
        )
        print(f"  {before:,} and {after:,} rows; peak RSS {rss_mb():.0f} MB")
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
