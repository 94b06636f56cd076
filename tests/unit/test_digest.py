"""The digest's pure parts: when it is due, what its settings accept, and that outside text is
shown, never obeyed, in the HTML, the text part and the headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from fbstampli.config import DigestSettings, digest_problems
from fbstampli.digest import (
    Changes,
    Digest,
    ExceptionGroup,
    ExceptionItem,
    StuckDelivery,
    build_message,
    is_due,
    render_html,
    render_text,
)

TORONTO = ZoneInfo("America/Toronto")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "last", "due"),
    [
        # Toronto is on EDT (UTC-4) from 2026-03-08: 07:00 there is 11:00 UTC.
        ("2026-03-10T10:59:00", None, False),  # 06:59 in Toronto, never sent: wait for 07:00
        ("2026-03-10T11:01:00", None, True),  # 07:01 in Toronto
        ("2026-03-10T11:01:00", "2026-03-10T11:00:30", False),  # sent at 07:00:30 today
        ("2026-03-11T10:00:00", "2026-03-10T11:00:30", False),  # 06:00 the next day
        ("2026-03-11T11:00:00", "2026-03-10T11:00:30", True),  # 07:00 the next day
        ("2026-03-13T11:00:00", "2026-03-10T11:00:30", True),  # days were missed: send once
        ("2026-03-10T10:00:00", "2026-03-09T05:00:00", True),  # yesterday's 07:00 not sent
        ("2026-03-08T11:30:00", "2026-03-07T12:00:30", True),  # the day clocks went forward
    ],
)
def test_the_digest_is_due_once_per_day_after_its_local_time(
    now: str, last: str | None, due: bool
) -> None:
    assert is_due(at(now), "07:00", TORONTO, at(last) if last else None) is due


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (DigestSettings(send_at="7am"), "digest.send_at"),
        (DigestSettings(send_at="24:00"), "digest.send_at"),
        (DigestSettings(timezone="Mars/Olympus"), "digest.timezone"),
        (DigestSettings(enabled=True, sender="a@example.com"), "digest.to"),
        (DigestSettings(enabled=True, to="a@example.com"), "digest.sender"),
        (DigestSettings(to="a@example.com\r\nBcc: evil@example.com"), "digest.to"),
        (DigestSettings(sender="a@example.com, b@example.com"), "digest.sender"),
    ],
)
def test_digest_settings_name_each_problem_by_key(settings: DigestSettings, key: str) -> None:
    assert any(problem.startswith(key + ":") for problem in digest_problems(settings))


def test_good_digest_settings_have_no_problem() -> None:
    settings = DigestSettings(
        enabled=True,
        send_at="07:30",
        timezone="Europe/London",
        to="a@x.com, b@y.org",
        sender="f@x.com",
    )
    assert digest_problems(settings) == []


HOSTILE = '<script>alert("x")</script>\r\nBcc: victim@example.com'


def hostile_digest() -> Digest:
    item = ExceptionItem(
        fb_bill_id=7,
        invoice_number=f"INV-{HOSTILE}",
        vendor=HOSTILE,
        amount=Decimal("1234.5"),
        currency="USD",
        stampli_invoice_id="S-7",
        detail=HOSTILE,
    )
    return Digest(
        business=HOSTILE,
        generated_at=datetime(2026, 3, 10, 7, 0, tzinfo=TORONTO),
        funnel={
            "in_freshbooks": 1200,
            "sent": 1190,
            "captured": 1100,
            "approved": 900,
            "paid": 850,
        },
        groups=[ExceptionGroup("amount_differs", 3, {"USD": Decimal("5000.25")}, [item])],
        stuck_total=1,
        stuck=[StuckDelivery("bill", 7, HOSTILE, "dead", 8, HOSTILE, "2026-03-09 10:00")],
        changes=Changes(since="2026-03-09 12:00 UTC", funnel={"paid": 12}, outcomes={"matched": 4}),
        reconciled_at="2026-03-10 06:45 EDT",
    )


def test_outside_text_is_escaped_in_the_html() -> None:
    page = render_html(hostile_digest())
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_outside_text_cannot_add_a_header_or_a_line_to_the_text_part() -> None:
    digest = hostile_digest()
    message = build_message(digest, sender="f@example.com", to=["ap@example.com"])
    assert "Bcc" not in message
    assert "\r\nBcc" not in render_text(digest)
    assert "\\r\\nBcc" in render_text(digest)


def test_the_text_part_says_the_funnel_totals_and_changes() -> None:
    text = render_text(hostile_digest())
    assert "Captured in Stampli     1,100" in text
    assert re.search(r"^  Paid in Stampli +850$", text, re.MULTILINE)
    assert "Paid amounts differ: 3 bills, 5,000.25 USD" in text
    assert "and 2 more" in text
    assert "Paid in Stampli +12" in text
    assert "4 bills: now matched" in text
