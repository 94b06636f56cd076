"""What an accountant checks of a bill beyond its payments: is what Stampli holds the bill?

Pure. Stampli's capture and approval rows carry the invoice total Stampli read;
fbstampli's deliveries carry each version it sent (`Version`). From them:

- changed after approval: Stampli approved an earlier version (the approval's total is
  that version's, or a version with another total was sent after the approval);
- Stampli holds an old version: its latest capture or approval still has an earlier
  version's total although the newer one reached Stampli;
- captured amount differs: Stampli's total is no version fbstampli ever sent (a capture
  keyed wrong, or in another currency);
- deleted in FreshBooks, told with what Stampli did: paid or approved it (attention),
  rejected it or was sent the VOID and did nothing (`voided`, no attention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from fbstampli.models.outcome import Outcome
from fbstampli.sync.payment_match import Money, Tolerance, describe, sums

# Approval statuses meaning Stampli will not pay the invoice.
REJECTED_STATUSES = frozenset({"rejected", "cancelled", "canceled", "declined"})

Verdict = tuple[Outcome, str]


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a bill fbstampli queued for Stampli, with the total it carried."""

    number: int
    total: Money
    queued_at: datetime
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """What Stampli's latest capture or approval row says the invoice totals."""

    total: Money
    kind: str  # "approval" from a row that approved it, else "capture"


def money(value: Money) -> str:
    return f"{value.amount:.2f} {value.currency}"


def on(moment: date | None) -> str:
    if moment is None:
        return ""
    day = moment.date() if isinstance(moment, datetime) else moment
    return f" on {day.isoformat()}"


def _same(one: Money, other: Money, tolerance: Tolerance) -> bool:
    return one.currency == other.currency and tolerance.allows(one.amount, other.amount)


def earlier_version(
    amount: Money, total: Money, versions: Sequence[Version], tolerance: Tolerance
) -> Version | None:
    """The newest version sent whose total was `amount` while the bill's is now another."""
    for version in reversed(versions):
        if not _same(version.total, total, tolerance) and _same(version.total, amount, tolerance):
            return version
    return None


def changed_after_approval(
    total: Money,
    approval: str,
    approved_at: datetime | None,
    approved_amount: Money | None,
    versions: Sequence[Version],
    tolerance: Tolerance,
) -> Verdict | None:
    if approval != "approved":
        return None
    now = f"FreshBooks' bill now totals {money(total)}"
    if versions:
        now += f" (version {versions[-1].number})"
    if approved_amount is not None:
        if _same(approved_amount, total, tolerance):
            return None
        earlier = earlier_version(approved_amount, total, versions, tolerance)
        if earlier is None:
            return None  # no version of ours: the capture check says what it is
        said = f"approved in Stampli{on(approved_at)} at {money(approved_amount)}"
        return Outcome.CHANGED_AFTER_APPROVAL, f"{said} (version {earlier.number}); {now}"
    if approved_at is None:
        return None
    before = [v for v in versions if v.queued_at <= approved_at]
    after = [v for v in versions if v.queued_at > approved_at]
    if not before or not after or _same(before[-1].total, total, tolerance):
        return None
    said = f"approved in Stampli{on(approved_at)} when the bill was version {before[-1].number}"
    edited = f"edited in FreshBooks after{on(after[0].queued_at)}"
    return Outcome.CHANGED_AFTER_APPROVAL, f"{said} ({money(before[-1].total)}); {edited}; {now}"


def held_outcome(
    total: Money, held: Held | None, versions: Sequence[Version], tolerance: Tolerance
) -> Verdict | None:
    """Stampli's total against the bill's: an old version of ours, or none of ours."""
    if held is None or _same(held.total, total, tolerance):
        return None
    verb = "captured" if held.kind == "capture" else "approved"
    earlier = earlier_version(held.total, total, versions, tolerance)
    if earlier is not None:
        latest = versions[-1]
        if latest.delivered_at is None or latest.number == earlier.number:
            return None  # the newer version is still on its way to Stampli
        return Outcome.STAMPLI_HOLDS_OLD_VERSION, (
            f"Stampli {verb} {money(held.total)}, the total of version {earlier.number}; "
            f"version {latest.number} ({money(latest.total)}) reached Stampli"
            f"{on(latest.delivered_at)} and was not taken"
        )
    return Outcome.CAPTURED_AMOUNT_DIFFERS, (
        f"Stampli {verb} {money(held.total)}; the bill totals {money(total)} in FreshBooks"
    )


def rejected_but_paid(
    approval: str, decided_at: datetime | None, approver: str, fb_payments: Sequence[Money]
) -> Verdict | None:
    if approval not in REJECTED_STATUSES or not fb_payments:
        return None
    by = f" by {approver}" if approver else ""
    paid_on = max((p.on for p in fb_payments if p.on is not None), default=None)
    return Outcome.REJECTED_BUT_PAID, (
        f"{approval} in Stampli{on(decided_at)}{by}; "
        f"FreshBooks paid {describe(sums(fb_payments))}{on(paid_on)}"
    )


def deleted_outcome(
    deleted_on: date | None,
    void_sent_at: datetime | None,
    approval: str,
    decided_at: datetime | None,
    stampli_payments: Sequence[Money],
) -> Verdict:
    """A bill deleted in FreshBooks, by what Stampli did with it."""
    gone = f"deleted in FreshBooks{on(deleted_on)}"
    if stampli_payments:
        paid_on = max((p.on for p in stampli_payments if p.on is not None), default=None)
        paid = describe(sums(stampli_payments))
        return Outcome.DELETED_IN_FRESHBOOKS, f"{gone}, yet Stampli paid {paid}{on(paid_on)}"
    if approval == "approved":
        return Outcome.DELETED_IN_FRESHBOOKS, f"{gone}, yet Stampli approved it{on(decided_at)}"
    if approval in REJECTED_STATUSES:
        return Outcome.VOIDED, f"{gone}; Stampli {approval} it{on(decided_at)}"
    if void_sent_at is not None:
        return Outcome.VOIDED, (
            f"{gone}; the VOID reached Stampli{on(void_sent_at)}, which neither approved "
            "nor paid it"
        )
    return Outcome.DELETED_IN_FRESHBOOKS, f"{gone}; no VOID reached Stampli, which still holds it"
