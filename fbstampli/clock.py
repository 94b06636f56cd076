"""Time as an injectable edge, so backoff and cursors are tested without sleeping; and the
two text forms every time takes: `to_utc_text` for the state, JSON and CSV, `local_text`
for people."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def to_utc_text(moment: datetime) -> str:
    """The one text form timestamps take in the state store: sortable ISO 8601 UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_utc_text(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as stored or sent (`…Z`, `…+00:00`); one without a zone is UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_text(moment: datetime | str, zone: tzinfo | None = None, *, seconds: bool = False) -> str:
    """The one text form times take for people: local time (or `zone`'s) with the zone named,
    `2026-12-07 16:05 CET` (`16:05:42` with `seconds`, for a clock check), in every command;
    JSON and CSV take `to_utc_text`'s."""
    aware = parse_time(moment) if isinstance(moment, str) else moment
    return aware.astimezone(zone).strftime(f"%Y-%m-%d %H:%M{':%S' * seconds} %Z")
