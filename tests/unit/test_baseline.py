"""The go-live rule, read as an accountant would: what was paid before fbstampli sent the bill
(or before reconcile.since) is history; the day it was sent is not (which came first is not
known)."""

from datetime import UTC, date, datetime

import pytest

from fbstampli.sync.baseline import is_history

SENT = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("paid_on", "first_sent", "since", "history"),
    [
        (date(2025, 11, 2), SENT, None, True),  # paid months before go-live
        (date(2026, 3, 9), SENT, None, True),  # the day before it was sent
        (date(2026, 3, 10), SENT, None, False),  # the day it was sent: not known which first
        (date(2026, 3, 12), SENT, None, False),  # paid after: Stampli should know
        (None, SENT, None, False),  # not paid at all
        (date(2025, 11, 2), None, None, False),  # never sent: nothing to compare with
        (date(2026, 3, 12), SENT, date(2026, 4, 1), True),  # before reconcile.since
        (date(2026, 4, 1), SENT, date(2026, 4, 1), False),  # on reconcile.since
        (date(2026, 3, 9), SENT, date(2026, 1, 1), False),  # since overrides the send day
    ],
)
def test_a_bill_is_history_when_paid_before_it_was_sent_or_before_since(
    paid_on: date | None, first_sent: datetime | None, since: date | None, history: bool
) -> None:
    assert is_history(paid_on, first_sent, since) is history
