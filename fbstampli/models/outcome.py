"""Reconciliation's verdict on one bill.

Here, below every room, because the engine decides it, the state keeps it,
and the status screens, summaries and exit codes read it.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    MATCHED = "matched"
    AMOUNT_DIFFERS = "amount_differs"
    PAID_IN_FRESHBOOKS_ONLY = "paid_in_freshbooks_only"
    PAID_IN_STAMPLI_ONLY = "paid_in_stampli_only"
    APPROVED_NOT_PAID = "approved_not_paid"
    NOT_CAPTURED = "not_captured"
    UNKNOWN_TO_FRESHBOOKS = "unknown_to_freshbooks"
    IN_PROGRESS = "in_progress"  # nothing to pay yet and nothing overdue: no attention needed
    # Set after classifying, by sync/baseline.py: paid in FreshBooks before go-live, and an
    # outcome an accountant gave a reason for while its facts hold. Neither needs attention.
    HISTORY = "history"
    ACKNOWLEDGED = "acknowledged"
    # What an accountant checks beyond the sums (#28): each needs attention but `voided`.
    CURRENCY_DIFFERS = "currency_differs"  # paid in one currency here, another there
    CAPTURED_AMOUNT_DIFFERS = "captured_amount_differs"  # Stampli's capture is not the bill
    CHANGED_AFTER_APPROVAL = "changed_after_approval"  # approved, then edited in FreshBooks
    STAMPLI_HOLDS_OLD_VERSION = "stampli_holds_old_version"  # the update did not take
    REJECTED_BUT_PAID = "rejected_but_paid"  # rejected in Stampli, paid in FreshBooks
    DELETED_IN_FRESHBOOKS = "deleted_in_freshbooks"  # deleted, yet Stampli approved or paid it
    VOIDED = "voided"  # deleted in FreshBooks, and Stampli neither approved nor paid it

    @property
    def needs_attention(self) -> bool:
        return self not in (
            Outcome.MATCHED,
            Outcome.IN_PROGRESS,
            Outcome.HISTORY,
            Outcome.ACKNOWLEDGED,
            Outcome.VOIDED,
        )
