"""Bill payments at the cost of the changes: read the payments of the bills that moved.

FreshBooks gives a bill payment no `updated_at` and no webhook of its own
(docs/FRESHBOOKS-BEHAVIOUR.md §2.5, §3.3), so the plain way to see a new, edited or deleted
payment is to list every payment ever made, every run. But a payment changes
its bill's `paid`, `outstanding` and `status`, and so (an assumption FreshBooks
does not document) moves the bill's `updated_at`. The incremental pass already
finds the bills that moved; the payments of those bills are read with
`search[billid]`, one listing per moved bill. A run with nothing new reads no
payment at all, whatever the history.

The assumption is checked at every full sweep, which still lists every payment:
a payment that changed while its bill's `updated_at` stood still is one this
path missed. That disproves it for this account. The fact is kept in the
state, said once as a warning, and from then on every run lists all payments
(the sweep has already delivered what was missed). A `search[billid]` answered
with other bills' payments disproves it at once, the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

from fbstampli.clock import from_utc_text
from fbstampli.models import Bill, BillPayment, Kind
from fbstampli.models.behaviour import PAYMENTS_MOVE_BILLS, Fact
from fbstampli.report import RunReport
from fbstampli.store import Store
from fbstampli.store.snapshots import stored_stamps
from fbstampli.sync.fetch import Fetched
from fbstampli.sync.plan import Decision
from fbstampli.sync.ports import BillSource
from fbstampli.sync.vanished import (
    deleted_among,
    vanished_of_all,
    vanished_of_bills,
    with_deleted_of_all,
)

log = logging.getLogger(__name__)

# Absent: payments are read through the bills that moved. "disproved: <why>" once a
# sweep or a listing showed FreshBooks does not behave so; never cleared by the program.
FOLLOW_KEY = "push.payments.follow_bills"
DISPROVED = "disproved"
DISPROVED_AT_KEY = "push.payments.disproved_at"
SWEEP_KEY = "push.last_full_sweep"  # when push last listed everything; its sweep checks the fact
# Above this many moved bills, the payments are listed whole (and the moved bills'
# taken from the listing) rather than searched bill by bill.
MANY_MOVED = 100


def follows_bills(store: Store) -> bool:
    """True while no run has disproved that a payment change moves its bill."""
    value = store.get_value(FOLLOW_KEY)
    return value is None or not value.startswith(DISPROVED)


def disproval(store: Store) -> str | None:
    """Why the fast path was given up, for status and doctor; None while it holds."""
    value = store.get_value(FOLLOW_KEY)
    if value is None or not value.startswith(DISPROVED):
        return None
    return value.partition(": ")[2] or value


def as_fact(store: Store) -> dict[str, Fact]:
    """The fast path's standing as a behaviour fact, for doctor and status beside the others:
    nothing before a full sweep has checked it; "holds" or "disproved" (with why) after."""
    why = disproval(store)
    if why is not None:  # by a sweep, or at once by a search[billid] that ignored its filter
        at = store.get_value(DISPROVED_AT_KEY) or store.get_value(SWEEP_KEY) or store.now_text()
        return {PAYMENTS_MOVE_BILLS: Fact("disproved", from_utc_text(at), why)}
    swept = store.get_value(SWEEP_KEY)
    if swept is None:
        return {}
    return {PAYMENTS_MOVE_BILLS: Fact("holds", from_utc_text(swept), "checked by every full sweep")}


def disprove(store: Store, why: str, report: RunReport) -> None:
    """Keep the learnt fact and say it once; later runs list every payment quietly."""
    if not follows_bills(store):
        return
    with store.transaction():
        store.put_value(FOLLOW_KEY, f"{DISPROVED}: {why}")
        store.put_value(DISPROVED_AT_KEY, store.now_text())
    message = (
        f"bill payments are listed whole from now on: {why}, so FreshBooks does not "
        "move a bill when its payments change (an undocumented behaviour this run disproved)"
    )
    log.warning(message)
    report.notes.append(message)


def moved_bills(store: Store, bills: Iterable[Bill]) -> set[int]:
    """Bills whose `updated_at` differs from the one their snapshot was last seen with."""
    listed = {bill.fb_id: bill for bill in bills}
    stamps = stored_stamps(store, Kind.BILL, listed)
    return {
        bill_id
        for bill_id, bill in listed.items()
        if bill.updated_at is None or stamps.get(bill_id) != bill.updated_at.isoformat()
    }


def payments_of_moved(
    store: Store, source: BillSource, bills: Sequence[Bill], report: RunReport
) -> list[BillPayment] | None:
    """The payments of the moved bills, deleted ones included; None if the filter was ignored.

    Every listing omits deleted payments, so a payment last seen live and missing
    now is looked up among the deleted (`sync.vanished`): more requests only when
    one vanished. A bulk change lists every payment, so a deletion on any bill is seen.
    """
    moved = sorted(moved_bills(store, bills))
    if not moved:
        return []
    if len(moved) > MANY_MOVED:  # a bulk change: one listing is cheaper than a search per bill
        wanted = set(moved)
        everything = list(source.list_bill_payments())
        payments = [p for p in everything if p.bill_id in wanted]
        return [*payments, *deleted_among(source, vanished_of_all(store, everything))]
    payments = list(source.bill_payments_of(moved))
    foreign = {p.bill_id for p in payments} - set(moved)
    if foreign:
        disprove(store, "FreshBooks ignored `search[billid]` on bill payments", report)
        return None
    return [*payments, *deleted_among(source, vanished_of_bills(store, payments, moved))]


def with_payments_of_moved(
    store: Store, source: BillSource, fetched: Fetched, report: RunReport
) -> Fetched:
    """`fetched` plus the payments of its moved bills, or plus every payment as the fallback."""
    payments = payments_of_moved(store, source, fetched.bills, report)
    if payments is None:
        payments = with_deleted_of_all(store, source, list(source.list_bill_payments()))
    have = {p.fb_id for p in fetched.payments}
    extra = [p for p in payments if p.fb_id not in have]
    return dataclasses.replace(fetched, payments=[*fetched.payments, *extra])


def missed_payments(
    store: Store, fetched: Fetched, moved: set[int], decisions: Sequence[Decision]
) -> list[int]:
    """Payments the sweep changed on bills that did not move: what the fast path missed.

    `moved` is what `moved_bills` said of the sweep's bills before they were
    applied: a payment change on a moved bill would have been found by the
    incremental path too; one on a known bill that stood still was missed by it.
    """
    bill_of = {p.fb_id: p.bill_id for p in fetched.payments}
    changed = {
        d.observed.fb_id: bill_of[d.observed.fb_id]
        for d in decisions
        if d.observed.kind is Kind.PAYMENT and d.observed.fb_id in bill_of
    }
    known = stored_stamps(store, Kind.BILL, set(changed.values()))
    return sorted(
        payment_id
        for payment_id, bill_id in changed.items()
        if bill_id in known and bill_id not in moved
    )


def report_missed(store: Store, missed: Sequence[int], report: RunReport) -> None:
    """Disprove the fast path when the sweep found payment changes it missed."""
    if not missed:
        return
    shown = ", ".join(str(i) for i in missed[:5]) + (" ..." if len(missed) > 5 else "")
    disprove(
        store,
        f"the full sweep found {len(missed)} payment change(s) on bills that did not "
        f"move (payment {shown})",
        report,
    )
