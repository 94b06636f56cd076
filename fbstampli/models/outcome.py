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

    @property
    def needs_attention(self) -> bool:
        return self not in (
            Outcome.MATCHED,
            Outcome.IN_PROGRESS,
            Outcome.HISTORY,
            Outcome.ACKNOWLEDGED,
        )
