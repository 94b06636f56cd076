"""The go-live baseline and acknowledgements: outcomes an accountant has no reason to act on.

Applied to the matcher's results after it classified a set of bills, before they
are kept; the matcher itself is not changed. Two rules, both only ever taking
attention away, and only from the bill they name:

- History: a bill FreshBooks paid before fbstampli first sent it to Stampli (or
  before `reconcile.since`) was paid outside Stampli by design; "paid in
  FreshBooks only" (or "not captured") is what it is expected to be. It is
  reported as `history`, never counted as needing attention. Stampli paying it
  too is not history: that stays a difference.
- Acknowledged: an accountant recorded a reason for this outcome (`reconcile
  acknowledge`); while the outcome, its detail and the bill are as they were,
  it is `acknowledged`. Any change of those facts brings the real outcome back.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from fbstampli.models.outcome import Outcome
from fbstampli.store import Store
from fbstampli.store.baseline import (
    Acknowledgement,
    acknowledgements,
    bill_hashes,
    latest_paid_dates,
)
from fbstampli.store.reconciliations import BillSet, first_delivered_at
from fbstampli.sync.matching import Result

# What a bill paid in FreshBooks before go-live looks like to the matcher: rejected in
# Stampli too, as a clerk does with a bill that was already paid when it arrived (#28).
HISTORY_OUTCOMES = frozenset(
    {Outcome.PAID_IN_FRESHBOOKS_ONLY, Outcome.NOT_CAPTURED, Outcome.REJECTED_BUT_PAID}
)


def is_history(paid_on: date | None, first_sent: datetime | None, since: date | None) -> bool:
    """Paid (its latest payment) before `since`, or before the day fbstampli first sent it
    when no `since` is set. A bill paid the day it was first sent is not history: which came
    first that day is not known."""
    if paid_on is None:
        return False
    cutoff = since or (first_sent.date() if first_sent is not None else None)
    return cutoff is not None and paid_on < cutoff


def history_detail(
    result: Result, paid_on: date, first_sent: datetime | None, since: date | None
) -> str:
    if since is not None:
        before = f"before reconcile.since {since.isoformat()}"
    else:
        sent = first_sent.date().isoformat() if first_sent is not None else "?"
        before = f"before fbstampli first sent it on {sent}"
    return f"paid in FreshBooks on {paid_on.isoformat()}, {before} ({result.detail})"


def acknowledged_detail(ack: Acknowledgement) -> str:
    return f"{ack.outcome} acknowledged: {ack.reason}"


def still_holds(ack: Acknowledgement, result: Result, bill_hash: str | None) -> bool:
    """Whether the facts the acknowledgement was given for are the facts now."""
    return (
        ack.outcome == result.outcome.value
        and ack.detail == result.detail
        and ack.bill_hash == (bill_hash or "")
    )


def apply_baseline(
    store: Store,
    results: list[Result],
    *,
    since: date | None,
    acks: dict[int, Acknowledgement] | None = None,
) -> list[Result]:
    """`results` with history and acknowledged bills given those outcomes; reads only the
    bills that need attention, so a set without any costs nothing."""
    flagged = {
        r.fb_bill_id for r in results if r.fb_bill_id is not None and r.outcome.needs_attention
    }
    if not flagged:
        return results
    known = acknowledgements(store) if acks is None else acks
    bills = BillSet(ids=frozenset(flagged))
    paid = latest_paid_dates(store, flagged)
    sent = first_delivered_at(store, bills)
    hashes = bill_hashes(store, [bill_id for bill_id in flagged if bill_id in known])
    settled = []
    for result in results:
        bill_id = result.fb_bill_id
        if bill_id is None or bill_id not in flagged:
            settled.append(result)
            continue
        paid_on, first_sent = paid.get(bill_id), sent.get(bill_id)
        if result.outcome in HISTORY_OUTCOMES and is_history(paid_on, first_sent, since):
            assert paid_on is not None  # noqa: S101 - is_history said so
            detail = history_detail(result, paid_on, first_sent, since)
            result = replace(result, outcome=Outcome.HISTORY, detail=detail)
        elif bill_id in known and still_holds(known[bill_id], result, hashes.get(bill_id)):
            ack = known[bill_id]
            result = replace(result, outcome=Outcome.ACKNOWLEDGED, detail=acknowledged_detail(ack))
        settled.append(result)
    return settled
