"""reconcile: FreshBooks' bills and payments against the stored Stampli records, bill by bill.

The rules and the matching of their inputs live in `sync/matching.py` (pure);
this module reads those inputs from the store and commits the outcomes.

FreshBooks' side is read from the snapshots push-bills keeps, not listed
again: push's incremental pass (and its daily sweep) keeps them current, so
a reconcile costs no FreshBooks requests however long the history, and in
`sync` it sees exactly what push just read. Only a bill Stampli names that
fbstampli never read (left out by `--since`, or never in FreshBooks) is
looked up by id: a new one at once, all of them once a day.

Bills are taken a range of ids at a time, so memory follows the range; an
outcome is written only when it changed, so the state grows with the changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fbstampli.clock import from_utc_text, to_utc_text
from fbstampli.config import ReconcileSettings
from fbstampli.models import VisState
from fbstampli.models.outcome import Outcome
from fbstampli.report import RunReport
from fbstampli.store import Store, reconciliations
from fbstampli.store.baseline import acknowledgements
from fbstampli.store.reconciliations import HIGHEST_ID, LOWEST_ID, BillSet, OutcomeKey, Stored
from fbstampli.sync import matching
from fbstampli.sync.baseline import apply_baseline
from fbstampli.sync.matching import BillFacts, Deleted, Money, Result
from fbstampli.sync.ports import BillSource
from fbstampli.sync.reconcile_inputs import VersionCells, read_deleted, read_versions, rules_of
from fbstampli.sync.stampli_side import stampli_facts

RANGE = 2000  # bills per range: a few hundred kilobytes of facts at a time
# Once a day every bill is classified again and every unread bill looked up: the safety net
# under the pass that takes only what changed, as push's daily sweep is under its own.
EVERY_BILL_KEY = "reconcile.every_bill_at"
EVERY_BILL_EVERY = timedelta(hours=24)
# Where the last reconcile left off: its start, the last Stampli record it saw, its settings.


@dataclass(frozen=True, slots=True)
class LookedUp:
    """What FreshBooks says now of bills fbstampli never read; a missing id has no live bill."""

    bills: Mapping[int, BillFacts]
    payments: Mapping[int, list[Money]]
    ids: frozenset[int]
    deleted: Mapping[int, Deleted] = field(default_factory=dict)  # deleted in FreshBooks


def look_up_unread(
    store: Store, source: Callable[[], BillSource], *, after_record: int | None
) -> LookedUp:
    """Ask FreshBooks about the bills Stampli names that fbstampli never read: those named by
    the records that arrived after `after_record`, or by any record (None: a full pass).

    Costs nothing, not even a login, when there is nothing to ask; a bill not among the
    live ones is asked for among the deleted (one more request), so a bill deleted in
    FreshBooks is told as deleted, not as unknown.
    """
    ids = reconciliations.unread_bill_ids(store, after_record=after_record)
    if not ids:
        return LookedUp({}, {}, frozenset())
    client = source()
    asked = set(ids)
    bills: dict[int, BillFacts] = {}
    deleted: dict[int, Deleted] = {}
    live = client.get_bills(ids)
    missing = asked - {found.fb_id for found in live}  # deleted, or never in FreshBooks
    gone = client.get_bills(sorted(missing), vis_state=VisState.DELETED) if missing else []
    for found in [*live, *gone]:
        if found.fb_id in asked:
            facts = BillFacts(found.fb_id, found.currency_code, found.total_amount)
            if found.vis_state != VisState.DELETED:
                bills[found.fb_id] = facts
            else:
                on = found.updated_at.date() if found.updated_at else None
                deleted[found.fb_id] = Deleted(facts, on)
    payments: dict[int, list[Money]] = defaultdict(list)
    for payment in client.bill_payments_of(sorted(bills)) if bills else ():
        bill = bills.get(payment.bill_id)
        if bill is not None and payment.vis_state != VisState.DELETED:
            currency = payment.currency_code or bill.currency
            payments[bill.fb_id].append(
                Money(payment.amount, currency, payment.paid_date, str(payment.fb_id), payment.note)
            )
    return LookedUp(bills, dict(payments), frozenset(asked), deleted)


def reconcile_state(
    store: Store,
    source: Callable[[], BillSource],
    settings: ReconcileSettings,
    *,
    now: datetime,
    run_id: int,
    report: RunReport,
    cells: VersionCells | None = None,
) -> None:
    """Classify the bills whose facts changed (every bill once a day), and keep the outcomes.

    Between full passes only the bills whose snapshots, deliveries or Stampli
    records changed since the last reconcile are classified again, with those
    in progress whose outcome time alone turns by now (an approval left unpaid
    too long, a bill not captured in time): a quiet run costs what the changes
    cost. Each set of bills is committed with the audit lines of the bills whose
    outcome changed, and the mark of what was reconciled last: a killed
    reconcile leaves every outcome whole, and the next run redoes the pass
    (an outcome already written is not written or audited again). The look-ups
    happen first, so no request runs under the lock. `cells`: where a sent bill's rows
    hold its total (the template's); without it, versions are not compared.
    """
    last_record = reconciliations.last_record_id(store)  # later records are the next run's
    fingerprint = _fingerprint(settings)
    stored = reconciliations.changes_mark(store)
    since = stored if isinstance(stored, dict) and stored.get("settings") == fingerprint else None
    every = store.get_value(EVERY_BILL_KEY)
    if every is not None and now - from_utc_text(every) >= EVERY_BILL_EVERY:
        since = None  # the daily pass: every bill, every unread bill looked up again
    looked_up = look_up_unread(
        store, source, after_record=None if since is None else since["record"]
    )
    at = store.now_text()
    since_day = date.fromisoformat(settings.since) if settings.since else None
    acks = acknowledgements(store)
    for bills in _sets_to_read(store, since, looked_up, now):
        with store.transaction():
            results, recheck, carried = _results(
                store, bills, looked_up, settings, now=now, cells=cells
            )
            results = apply_baseline(store, results, since=since_day, acks=acks)
            before = reconciliations.outcomes(store, bills)
            _settle(store, results, recheck, before, carried, at=at, run_id=run_id)
    with store.transaction():
        if since is None or reconciliations.records_naming_no_bill_after(store, since["record"]):
            unnamed = reconciliations.outcomes_naming_no_bill(store)
            _settle(store, _unnamed_results(store), {}, unnamed, frozenset(), at=at, run_id=run_id)
        store.put_value(reconciliations.LAST_RUN_KEY, str(run_id))
        reconciliations.save_changes_mark(store, at=at, record=last_record, settings=fingerprint)
        if since is None:
            store.put_value(EVERY_BILL_KEY, to_utc_text(now))
    counts = reconciliations.outcome_counts(store)
    for outcome, amount in sorted(counts.items()):
        report.add(outcome, amount)
    report.attention = any(Outcome(outcome).needs_attention for outcome in counts)


def _sets_to_read(
    store: Store, since: dict[str, Any] | None, looked_up: LookedUp, now: datetime
) -> Iterable[BillSet]:
    """Every bill (a full pass), or the bills changed since the last reconcile."""
    if since is None:
        return _every_range(store)
    changed = reconciliations.bills_changed_since(
        store, since["at"], since["record"], to_utc_text(now)
    )
    return _sets_of(changed | looked_up.ids)


def _fingerprint(settings: ReconcileSettings) -> list[object]:
    """The settings outcomes are judged by: a change of any means every bill again."""
    return [
        settings.approved_unpaid_days,
        settings.uncaptured_hours,
        settings.since,
        settings.tolerance_amount,
        settings.tolerance_percent,
        settings.payment_window_days,
    ]


def _settle(
    store: Store,
    results: list[Result],
    recheck: Mapping[int, str],
    before: Mapping[OutcomeKey, Stored],
    carried: frozenset[int],
    *,
    at: str,
    run_id: int,
) -> None:
    """Write what changed of one set's outcomes, with the audit lines it deserves."""
    changed, gone = _changes(results, recheck, before, carried)
    reconciliations.save_outcomes(store, run_id, changed, gone)
    store.audit_many(_audit_lines(results, before, at=at, run_id=run_id))


def _every_range(store: Store) -> Iterator[BillSet]:
    """Every bill id, `RANGE` snapshots at a time; the first range starts at the lowest id
    there could be and the last ends at the highest, so no id Stampli names is missed
    between or beyond them."""
    after = LOWEST_ID
    while True:
        ids = reconciliations.bill_ids_after(store, after, RANGE)
        last = len(ids) < RANGE
        high = HIGHEST_ID if last else ids[-1]
        yield BillSet(after if after == LOWEST_ID else after + 1, high)
        if last:
            return
        after = high


def _sets_of(ids: Iterable[int]) -> Iterator[BillSet]:
    """These ids exactly, `RANGE` at a time: however far apart, nothing between is read."""
    ordered = sorted(ids)
    for start in range(0, len(ordered), RANGE):
        yield BillSet(ids=frozenset(ordered[start : start + RANGE]))


def _freshbooks_side(
    store: Store, bills_read: BillSet, looked_up: LookedUp
) -> tuple[dict[int, BillFacts], set[int], dict[int, list[Money]]]:
    """The live bills of the set, every bill id read (deleted too), and their payments."""
    snapshots = reconciliations.bill_snapshots(store, bills_read)
    bills = {
        int(row["fb_id"]): BillFacts(
            int(row["fb_id"]), str(row["currency_code"]), Decimal(str(row["total_amount"]))
        )
        for row in snapshots
        if row["vis_state"] != VisState.DELETED
    }
    read = {int(row["fb_id"]) for row in snapshots}
    fb_payments: dict[int, list[Money]] = defaultdict(list)
    for row in reconciliations.payment_snapshots(store, bills_read):
        bill = bills.get(int(row["bill_id"]))
        if bill is not None:
            fb_payments[bill.fb_id].append(
                Money(
                    Decimal(str(row["amount"])),
                    row["currency_code"] or bill.currency,
                    date.fromisoformat(str(row["paid_date"])) if row["paid_date"] else None,
                    str(row["fb_id"]),
                    str(row["note"] or ""),
                )
            )
    for bill_id, bill in looked_up.bills.items():
        if bills_read.holds(bill_id):
            bills[bill_id] = bill
            fb_payments[bill_id] = list(looked_up.payments.get(bill_id, ()))
    return bills, read, fb_payments


def _results(
    store: Store,
    bills_read: BillSet,
    looked_up: LookedUp,
    settings: ReconcileSettings,
    *,
    now: datetime,
    cells: VersionCells | None = None,
) -> tuple[list[Result], dict[int, str], frozenset[int]]:
    """The outcomes of one set of bills, when time alone may turn those in progress, and
    the unread ids left as they are."""
    bills, read, fb_payments = _freshbooks_side(store, bills_read, looked_up)
    deleted = {k: v for k, v in read_deleted(store, bills_read).items() if k not in bills}
    deleted.update((k, v) for k, v in looked_up.deleted.items() if bills_read.holds(k))
    records = reconciliations.stampli_records(store, bills_read)
    carried = frozenset(
        int(row["fb_bill_id"])
        for row in records
        if row["fb_bill_id"] not in read and row["fb_bill_id"] not in looked_up.ids
    )
    known = {**{k: gone.bill for k, gone in deleted.items()}, **bills}
    stampli, unknown = stampli_facts(records, known, carried=carried)
    delivered = reconciliations.first_delivered_at(store, bills_read)
    results = matching.reconcile(
        bills,
        fb_payments,
        stampli,
        unknown,
        delivered,
        now=now,
        approved_unpaid_days=settings.approved_unpaid_days,
        uncaptured_hours=settings.uncaptured_hours,
        rules=rules_of(settings),
        versions=read_versions(store, _holding(stampli, bills), bills, cells),
        deleted=deleted,
    )
    return results, _rechecks(results, stampli, delivered, settings), carried


def _holding(
    stampli: Mapping[int, matching.StampliFacts], bills: Mapping[int, BillFacts]
) -> BillSet:
    """The live bills whose versions matter: those Stampli says a total or an approval of
    (the versions' rows are read for these only, not for every bill of a full pass)."""
    return BillSet(
        ids=frozenset(
            bill_id
            for bill_id, facts in stampli.items()
            if bill_id in bills and (facts.held is not None or facts.approval == "approved")
        )
    )


def _rechecks(
    results: list[Result],
    stampli: Mapping[int, matching.StampliFacts],
    delivered: Mapping[int, datetime],
    settings: ReconcileSettings,
) -> dict[int, str]:
    """When time alone may turn each bill in progress."""
    recheck: dict[int, str] = {}
    for result in results:
        if result.outcome is Outcome.IN_PROGRESS and result.fb_bill_id is not None:
            moment = matching.changes_by_time_at(
                stampli.get(result.fb_bill_id),
                delivered_at=delivered.get(result.fb_bill_id),
                approved_unpaid_days=settings.approved_unpaid_days,
                uncaptured_hours=settings.uncaptured_hours,
            )
            if moment is not None:
                recheck[result.fb_bill_id] = to_utc_text(moment)
    return recheck


def _unnamed_results(store: Store) -> list[Result]:
    """Stampli invoices that name no FreshBooks bill at all."""
    _, unknown = stampli_facts(reconciliations.stampli_records_naming_no_bill(store), {})
    return matching.unknown_to_freshbooks(unknown)


def _key(result: Result) -> OutcomeKey:
    return (result.fb_bill_id, result.stampli_invoice_id or "")


def _changes(
    results: list[Result],
    recheck: Mapping[int, str],
    before: Mapping[OutcomeKey, Stored],
    carried: frozenset[int],
) -> tuple[list[tuple[int | None, str, str, str, str | None]], list[OutcomeKey]]:
    """The outcomes to write (new or changed) and the keys to drop (no longer reconciled)."""
    now = {_key(result): result for result in results}
    changed = []
    for key, result in now.items():
        due = recheck.get(result.fb_bill_id) if result.fb_bill_id is not None else None
        if before.get(key) != (result.outcome.value, result.detail, due):
            changed.append((result.fb_bill_id, key[1], result.outcome.value, result.detail, due))
    gone = [key for key in before if key not in now and key[0] not in carried]
    return changed, gone


def _audit_lines(
    results: list[Result],
    before: Mapping[OutcomeKey, Stored],
    *,
    at: str,
    run_id: int,
) -> list[tuple[object, ...]]:
    """Only what changed goes to the audit trail: ten runs of 500 unchanged bills would
    otherwise write 5,000 lines and bury the failures. A bill seen for the first time is
    written when it needs attention; after that, every change (a fix back to matched too)."""
    lines: list[tuple[object, ...]] = []
    for result in results:
        previous = before.get(_key(result))
        first_and_wrong = previous is None and result.outcome.needs_attention
        if first_and_wrong or (previous is not None and previous[0] != result.outcome.value):
            lines.append(
                (at, run_id, "bill", result.fb_bill_id, f"reconcile_{result.outcome.value}",
                 result.detail)
            )  # fmt: skip
    return lines
