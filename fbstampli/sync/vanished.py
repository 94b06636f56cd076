"""Payments deleted in FreshBooks, found in the run after the deletion on every listing path.

FreshBooks leaves a deleted payment out of every listing unless asked with
`search[vis_state]=1`, and a payment has no `updated_at` to read the deleted list
newest first by. So a payment is known deleted by its absence: last seen live (its
snapshot), missing from a listing that should hold it, then looked up among the
deleted, and only what FreshBooks shows there is taken as deleted (a payment
missed by a listing that shifted while it was read is left alone). The absence
costs no request; the look-up is made only when a payment vanished.

The listing that should hold it is the moved bills' `search[billid]` listings (the
fast path), or the list of every payment (the bulk path, and the fallback once
FreshBooks was seen to ignore `search[billid]` or not to move a bill with its
payments). The look-up asks by bill while there are few and the filter holds, else
lists every deleted payment.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterable, Mapping

from fbstampli.models import BillPayment, VisState
from fbstampli.store import Store
from fbstampli.store.snapshots import stored_live_payments, stored_payment_ids
from fbstampli.sync.fetch import Fetched
from fbstampli.sync.ports import BillSource

log = logging.getLogger(__name__)

# Above this many bills with a vanished payment, the deleted payments are listed whole.
MANY_BILLS = 100


def vanished_of_bills(
    store: Store, listed: Iterable[BillPayment], bills: Collection[int]
) -> dict[int, int]:
    """Payments last seen live on `bills` and missing from their listing: id -> bill id."""
    ids = {payment.fb_id for payment in listed}
    return {
        payment_id: bill_id
        for bill_id, known in stored_payment_ids(store, bills).items()
        for payment_id in known - ids
    }


def vanished_of_all(store: Store, listed: Iterable[BillPayment]) -> dict[int, int]:
    """Payments last seen live and missing from a listing of every payment: id -> bill id.

    Reads every live payment's snapshot: only on paths that list every payment anyway.
    """
    ids = {payment.fb_id for payment in listed}
    return {pid: bill for pid, bill in stored_live_payments(store).items() if pid not in ids}


def deleted_among(source: BillSource, vanished: Mapping[int, int]) -> list[BillPayment]:
    """The vanished payments FreshBooks lists among the deleted (nothing asked if none)."""
    if not vanished:
        return []
    bills = set(vanished.values())
    found: list[BillPayment] = []
    if len(bills) <= MANY_BILLS:
        for payment in source.bill_payments_of(sorted(bills), vis_state=VisState.DELETED):
            if payment.bill_id not in bills:  # `search[billid]` ignored: ask for them all
                found = _every_deleted(source)
                break
            found.append(payment)
    else:
        found = _every_deleted(source)
    # Once each: a filter ignored without a foreign bill to show it repeats the same answer.
    deleted = list({p.fb_id: p for p in found if p.fb_id in vanished}.values())
    log.info(
        "%d payment(s) missing from FreshBooks' listing; %d of them listed as deleted",
        len(vanished),
        len(deleted),
    )
    return deleted


def _every_deleted(source: BillSource) -> list[BillPayment]:
    return list(source.list_bill_payments(vis_state=VisState.DELETED))


def with_deleted_of_all(
    store: Store, source: BillSource, listed: list[BillPayment]
) -> list[BillPayment]:
    """`listed` (every live payment) with the deleted versions of those that vanished."""
    return [*listed, *deleted_among(source, vanished_of_all(store, listed))]


def with_deleted_payments(store: Store, source: BillSource, fetched: Fetched) -> Fetched:
    """`fetched`, whose payments are every live one, with those deleted since the last run."""
    payments = with_deleted_of_all(store, source, fetched.payments)
    return dataclasses.replace(fetched, payments=payments)
