"""The two text forms of a time (issue 29): `local_text` for people, `to_utc_text` for the
state, JSON and CSV; whatever form a time was stored or sent in."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from fbstampli.clock import local_text, parse_time, to_utc_text

MOMENT = datetime(2026, 12, 7, 15, 5, 42, tzinfo=UTC)


@pytest.mark.parametrize(
    "stored", ["2026-12-07T15:05:42.000000Z", "2026-12-07T15:05:42+00:00", "2026-12-07T15:05:42"]
)
def test_every_stored_form_is_read_as_the_same_utc_moment(stored: str) -> None:
    assert parse_time(stored) == MOMENT
    assert to_utc_text(parse_time(stored)) == "2026-12-07T15:05:42.000000Z"


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        ("Europe/Paris", "2026-12-07 16:05 CET"),
        ("Asia/Tokyo", "2026-12-08 00:05 JST"),
        ("America/New_York", "2026-12-07 10:05 EST"),
    ],
)
def test_people_read_the_day_minute_and_zone(zone: str, said: str) -> None:
    assert local_text(MOMENT, ZoneInfo(zone)) == said
    assert local_text(to_utc_text(MOMENT), ZoneInfo(zone)) == said


def test_a_clock_check_reads_the_second() -> None:
    assert local_text(MOMENT, ZoneInfo("Europe/Paris"), seconds=True) == "2026-12-07 16:05:42 CET"
