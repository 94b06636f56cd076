"""When a failed delivery may be tried again: 15 minutes, doubling, capped, then dead.

Pure: the caller passes the time, so nothing here sleeps or reads a clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def next_attempt_at(
    attempts: int,
    now: datetime,
    *,
    initial_minutes: int,
    max_hours: int,
) -> datetime:
    """`attempts` is how many runs have failed so far (1 after the first failure)."""
    delay = timedelta(minutes=initial_minutes) * (2 ** max(0, attempts - 1))
    capped: timedelta = min(delay, timedelta(hours=max_hours))
    return now + capped


def is_dead(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts
