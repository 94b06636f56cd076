"""What FreshBooks was seen to do where no public source says what it does.

Each fact is one assumption the client was written on (docs/FRESHBOOKS-BEHAVIOUR.md
§6; issue 15) and is checked from FreshBooks' own answers at the
moment it matters, never assumed. `Learnt` holds the conclusions with when
they were reached; the state keeps them (`store.api_facts`) so a fallback is
announced once, when it is learnt or changes, not on every 15-minute run.
Pure: no network, no store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from fbstampli.clock import to_utc_text

log = logging.getLogger(__name__)

SORT_BILLS = "sort.bills"
SORT_VENDORS = "sort.bill_vendors"
VENDOR_IDS = "vendor_ids_filter"
LIST_LINES = "list_lines"
VENDOR_TIMES = "vendor_times"
EMPTY_PAGES = "empty_pages"
# Kept by `sync/payments.py` in its own state key; shown here beside the others.
PAYMENTS_MOVE_BILLS = "payments_move_bills"
# Whether the login may download bill documents (GET /uploads/attachments/<jwt>) through
# the uploads API: the scope it needs is documented nowhere (issue 26), so a 401/403
# there is what tells.
DOCUMENTS = "uploads.attachments"
# Whether the login may list the expense categories (GET .../expenses/categories), the coding
# list sent before the vendors: it takes the scope `user:expenses:read`, which a login granted
# before this release (or an app not registered for it) lacks; a 403 there is what tells.
CATEGORIES = "expenses.categories"
# The same for the taxes (GET .../taxes/taxes), the other coding list: `user:taxes:read`.
TAXES = "taxes.taxes"

# How long a conclusion that costs requests stands before the cheaper way is tried again.
RECHECK_AFTER = timedelta(hours=24)
NEW_YORK = ZoneInfo("America/New_York")

LABELS: dict[str, str] = {
    SORT_BILLS: "sort by updated_at (bills)",
    SORT_VENDORS: "sort by updated_at (vendors)",
    VENDOR_IDS: "vendor ids filter",
    LIST_LINES: "bill lines in list responses",
    VENDOR_TIMES: "vendor timestamps",
    EMPTY_PAGES: "pages of an empty list",
    PAYMENTS_MOVE_BILLS: "a payment change moves its bill's updated_at",
    DOCUMENTS: "bill documents through the uploads API",
    CATEGORIES: "expense categories (user:expenses:read)",
    TAXES: "taxes (user:taxes:read)",
}

# What the run does instead, and what that costs, when a fact turns out the other way.
FALLBACKS: dict[tuple[str, str], str] = {
    (SORT_BILLS, "ignored"): "listing every bill each run instead of one newest-first page "
    "(one request per 100 bills per run)",
    (SORT_BILLS, "rejected"): "listing every bill each run instead of one newest-first page "
    "(one request per 100 bills per run, and one refused request a day to re-check)",
    (SORT_VENDORS, "ignored"): "listing every vendor each run instead of one newest-first page "
    "(one request per 100 vendors per run)",
    (SORT_VENDORS, "rejected"): "listing every vendor each run instead of one newest-first page "
    "(one request per 100 vendors per run, and one refused request a day to re-check)",
    (VENDOR_IDS, "ignored"): "fetching each vendor a webhook names by its id "
    "(one request per vendor instead of one per 100)",
    (VENDOR_IDS, "rejected"): "fetching each vendor a webhook names by its id "
    "(one request per vendor instead of one per 100)",
    (LIST_LINES, "omitted"): "fetching each changed bill by its id for its lines "
    "(one request per changed bill)",
    (VENDOR_TIMES, "America/New_York"): "reading vendor times as America/New_York "
    "(no extra requests)",
    (DOCUMENTS, "refused"): "sending bills without their documents, each flagged "
    "(no extra requests; asked again once a day)",
    (CATEGORIES, "refused"): "sending no expense categories file; bills still carry each line's "
    "category name and id (no extra requests; asked again once a day; grant user:expenses:read "
    "and run `fbstampli auth login` to send it)",
    (TAXES, "refused"): "sending no taxes file; bills still carry each line's tax names and "
    "percents (no extra requests; asked again once a day; grant user:taxes:read and run "
    "`fbstampli auth login` to send it)",
    (PAYMENTS_MOVE_BILLS, "disproved"): "listing every bill payment each run instead of the "
    "payments of the bills that moved (one request per 100 payments per run)",
}

# The values that mean the assumption held; anything else is a fallback worth a warning.
EXPECTED: dict[str, str] = {
    SORT_BILLS: "honoured",
    SORT_VENDORS: "honoured",
    VENDOR_IDS: "honoured",
    LIST_LINES: "included",
    VENDOR_TIMES: "UTC",
    EMPTY_PAGES: "1",
    PAYMENTS_MOVE_BILLS: "holds",
    DOCUMENTS: "allowed",
    CATEGORIES: "allowed",
    TAXES: "allowed",
}


@dataclass(frozen=True, slots=True)
class Fact:
    value: str
    checked_at: datetime
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "value": self.value,
            "checked_at": self.checked_at.isoformat(),
            "detail": self.detail,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Fact | None:
        try:
            moment = datetime.fromisoformat(str(data["checked_at"]))
            return Fact(str(data["value"]), moment, str(data.get("detail", "")))
        except (KeyError, TypeError, ValueError):
            return None  # an unreadable record is as good as none: it is checked again


OnLearn = Callable[[str, Fact], None]


class Learnt:
    """The facts known so far; `learn` records one and says once when it changed."""

    def __init__(
        self,
        facts: Mapping[str, Fact] | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_learn: OnLearn | None = None,
    ) -> None:
        self.facts: dict[str, Fact] = dict(facts or {})
        self.now = now
        self.on_learn = on_learn

    def value(self, name: str) -> str | None:
        fact = self.facts.get(name)
        return None if fact is None else fact.value

    def stands(self, name: str, *values: str) -> bool:
        """The fact is one of `values` and was checked recently enough to act on unchecked."""
        fact = self.facts.get(name)
        if fact is None or fact.value not in values:
            return False
        return self.now() - fact.checked_at < RECHECK_AFTER

    def learn(self, name: str, value: str, detail: str = "") -> None:
        """Record `value` as checked now; a change is logged once (a WARNING for a fallback)."""
        previous = self.facts.get(name)
        fact = Fact(value, self.now(), detail)
        self.facts[name] = fact
        if previous is None or previous.value != value:
            label = LABELS.get(name, name)
            fallback = FALLBACKS.get((name, value))
            if fallback is not None:
                log.warning(
                    "FreshBooks: %s: %s (%s); from now on %s", label, value, detail, fallback
                )
            elif previous is not None and previous.value in _fallback_values(name):
                log.warning(
                    "FreshBooks: %s: %s again (%s); back to the cheaper way", label, value, detail
                )
            else:
                log.info("FreshBooks: %s: %s (%s)", label, value, detail)
        if self.on_learn is not None:
            self.on_learn(name, fact)


def _fallback_values(name: str) -> set[str]:
    return {value for fact, value in FALLBACKS if fact == name}


def describe(facts: Mapping[str, Fact]) -> list[str]:
    """One line per fact, for `doctor`: "sort by updated_at (bills): honoured, checked
    2026-12-01", with the fallback and its cost when there is one."""
    lines = []
    for name, label in LABELS.items():
        fact = facts.get(name)
        if fact is None:
            lines.append(f"{label}: not checked yet")
            continue
        line = f"{label}: {fact.value}, checked {fact.checked_at.astimezone(UTC):%Y-%m-%d}"
        fallback = FALLBACKS.get((name, fact.value))
        if fallback:
            line += f"; {fallback}"
        lines.append(line)
    return lines


def as_status(facts: Mapping[str, Fact]) -> dict[str, dict[str, str | None] | None]:
    """The facts as `status --json` shows them: null until checked; the fallback when taken."""
    shown: dict[str, dict[str, str | None] | None] = {}
    for name in LABELS:
        fact = facts.get(name)
        shown[name] = (
            None
            if fact is None
            else {
                "value": fact.value,
                "checked_at": to_utc_text(fact.checked_at),  # as every JSON time
                "detail": fact.detail,
                "fallback": FALLBACKS.get((name, fact.value)),
            }
        )
    return shown


# ---- the judgements ----------------------------------------------------------------------------


def ids_monotone(ids: Iterable[int]) -> bool:
    """Ids in creation order either way: what a listing in any default order would give."""
    seq = list(ids)
    rising = all(a < b for a, b in pairwise(seq))
    falling = all(a > b for a, b in pairwise(seq))
    return rising or falling


# A webhook reaches us seconds to minutes after the change; a time read as UTC that lags
# the arrival by the New York offset (4 or 5 h, give or take this much) was New York time.
ZONE_SLACK = timedelta(minutes=30)


def judge_vendor_times(pairs: Iterable[tuple[datetime, datetime]]) -> str | None:
    """'UTC', 'America/New_York' or None (cannot tell), from (updated_at read as UTC,
    the moment the webhook naming that change arrived) pairs.

    A vendor named by a webhook was changed just before the event arrived; its
    `updated_at`, read as UTC, is then minutes before the arrival if FreshBooks
    writes UTC, and 4-5 hours before (New York's offset that day) if it writes
    New York time. Anything else (an event that waited, a later second change)
    proves nothing and is left out.
    """
    verdicts = set()
    for stamp, arrived in pairs:
        lag = arrived - stamp
        offset = -(arrived.astimezone(NEW_YORK).utcoffset() or timedelta(0))
        if timedelta(minutes=-5) <= lag <= ZONE_SLACK:
            verdicts.add("UTC")
        elif abs(lag - offset) <= ZONE_SLACK:
            verdicts.add("America/New_York")
    return verdicts.pop() if len(verdicts) == 1 else None


def as_wall_clock_utc(moment: datetime, zone: tzinfo) -> datetime:
    """The zone-less text FreshBooks sent, read as UTC: undoes a reading in `zone`."""
    return moment.astimezone(zone).replace(tzinfo=UTC)
