"""doctor's clock judgement, pure: FreshBooks' `Date` as the reference, plausibility without it."""

from datetime import UTC, datetime, timedelta

import pytest

from fbstampli.clock import local_text
from fbstampli.freshbooks.account import parse_http_date
from fbstampli.services.doctor import clock_check, duration_text

NOON = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("local_offset", "ok", "words"),
    [
        (timedelta(0), True, "in step with FreshBooks"),
        (timedelta(seconds=42), True, "42 s ahead of FreshBooks"),
        (timedelta(minutes=-4, seconds=-59), True, "4 min 59 s behind FreshBooks"),
        (timedelta(minutes=5), True, "5 min ahead of FreshBooks"),
        (timedelta(minutes=5, seconds=1), False, "5 min 1 s ahead of FreshBooks"),
        (timedelta(minutes=-7, seconds=-3), False, "7 min 3 s behind FreshBooks"),
        (timedelta(hours=-26), False, "1 d 2 h behind FreshBooks"),
    ],
)
def test_clock_passes_within_five_minutes_of_freshbooks_and_fails_beyond(
    local_offset: timedelta, ok: bool, words: str
) -> None:
    result = clock_check(NOON + local_offset, freshbooks_time=NOON)
    assert result.ok is ok
    assert words in result.detail
    said = local_text(NOON + local_offset, seconds=True)
    assert result.detail.startswith(f"the clock says {said}")
    if not ok:
        assert "token expiry and webhook times" in result.detail
        assert "NTP" in result.fix


def test_freshbooks_time_wins_over_a_plausible_looking_history() -> None:
    # Hours after the last run looks fine on its own; FreshBooks says it is wrong.
    result = clock_check(NOON, freshbooks_time=NOON - timedelta(hours=3), last_run=NOON)
    assert not result.ok
    assert "3 h ahead of FreshBooks" in result.detail


@pytest.mark.parametrize(
    ("local", "last_run", "ok", "words"),
    [
        (NOON, None, True, "skipped: not compared with FreshBooks"),
        (NOON, NOON - timedelta(days=1), True, "skipped: not compared with FreshBooks"),
        (NOON, NOON + timedelta(minutes=4), True, "skipped: not compared with FreshBooks"),
        (NOON, NOON + timedelta(hours=2), False, "before the last recorded run"),
        (datetime(2001, 1, 1, tzinfo=UTC), None, False, "cannot be right"),
    ],
)
def test_without_freshbooks_only_an_impossible_or_backwards_clock_fails(
    local: datetime, last_run: datetime | None, ok: bool, words: str
) -> None:
    result = clock_check(local, last_run=last_run)
    assert result.ok is ok
    assert words in result.detail
    assert ("NTP" in result.fix) is not ok


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (423, "7 min 3 s"),
        (7500, "2 h 5 min"),
        (7205, "2 h"),
        (3 * 86400 + 4 * 3600 + 59, "3 d 4 h"),
    ],
)
def testduration_texts_show_their_two_largest_units(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Mon, 02 Mar 2026 12:00:00 GMT", NOON),
        ("Mon, 02 Mar 2026 12:00:00 -0000", NOON),
        ("Mon, 02 Mar 2026 13:00:00 +0100", NOON),
        (None, None),
        ("", None),
        ("yesterday-ish", None),
        ("Mon, 32 Mar 2026 12:00:00 GMT", None),
    ],
)
def test_http_dates_parse_to_aware_utc_or_nothing(
    header: str | None, expected: datetime | None
) -> None:
    assert parse_http_date(header) == expected
