"""Detecting FreshBooks' unconfirmed behaviours from its answers, and saying so once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import requests_mock as rm

from fbstampli.freshbooks.client import FreshBooksClient
from fbstampli.freshbooks.oauth import TokenManager
from fbstampli.models.behaviour import (
    LIST_LINES,
    RECHECK_AFTER,
    SORT_BILLS,
    VENDOR_IDS,
    Learnt,
    describe,
    judge_vendor_times,
)
from tests.unit.test_freshbooks_client import (
    BILLS,
    NOW,
    SETTINGS,
    VENDORS,
    MemoryStore,
    bill,
    page,
    token,
)


@pytest.fixture
def learnt() -> Learnt:
    return Learnt(now=lambda: NOW)


@pytest.fixture
def client(learnt: Learnt) -> Iterator[FreshBooksClient]:
    session = requests.Session()
    manager = TokenManager(SETTINGS, MemoryStore(token()), session=session, now=lambda: NOW)
    fb = FreshBooksClient(SETTINGS, manager, "ABC123", session=session, learnt=learnt)
    yield fb
    fb.close()


def dated(bill_id: int, hour: int) -> dict[str, Any]:
    return {**bill(bill_id), "updated_at": f"2024-04-01 {hour:02d}:00:00", "lines": []}


def vendor(vendor_id: int) -> dict[str, Any]:
    return {"vendorid": vendor_id, "vendor_name": f"V{vendor_id}"}


def test_a_page_newest_updated_first_but_not_in_creation_order_proves_the_sort(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    requests_mock.get(BILLS, json=page("bills", [dated(2, 9), dated(7, 8), dated(1, 7)], 1, 1, 3))
    assert [b.fb_id for p in client.recent_bill_pages() for b in p] == [2, 7, 1]
    assert learnt.value(SORT_BILLS) == "honoured"
    assert requests_mock.call_count == 1


def test_a_page_in_creation_order_is_settled_by_a_small_oldest_first_probe(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    newest_created_first = [dated(3, 9), dated(2, 8), dated(1, 7)]
    # FreshBooks ignoring the sort answers the oldest-first probe in the same order.
    requests_mock.get(BILLS, json=page("bills", newest_created_first, 1, 1, 3))
    assert [b.fb_id for p in client.recent_bill_pages() for b in p] == [3, 2, 1]
    assert learnt.value(SORT_BILLS) == "ignored"
    assert requests_mock.request_history[1].qs["sort"] == ["updated_at_asc"]


def test_a_refused_sort_lists_everything_and_is_not_sent_again_for_a_day(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    refused = {"response": {"errors": [{"errno": 1004, "field": "sort", "message": "Invalid"}]}}
    listed = {"json": page("bills", [dated(1, 7), dated(2, 9)], 1, 1, 2)}
    requests_mock.get(BILLS, [{"json": refused, "status_code": 400}, listed, listed])
    assert [b.fb_id for p in client.recent_bill_pages() for b in p] == [2, 1]
    assert learnt.value(SORT_BILLS) == "rejected"
    assert [b.fb_id for p in client.recent_bill_pages() for b in p] == [2, 1]
    assert [r.qs.get("sort") for r in requests_mock.request_history] == [
        ["updated_at_desc"],
        None,
        None,
    ]


def test_a_vendor_listing_by_ids_naming_others_falls_back_to_each_by_id(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    requests_mock.get(
        VENDORS, json=page("bill_vendors", [vendor(1), vendor(2), vendor(3)], 1, 1, 3)
    )
    requests_mock.get(f"{VENDORS}/2", json={"response": {"result": {"bill_vendor": vendor(2)}}})
    assert [v.fb_id for v in client.get_vendors([2])] == [2]
    assert learnt.value(VENDOR_IDS) == "ignored"


def test_a_refused_vendor_ids_filter_falls_back_to_each_by_id(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    refused = {"response": {"errors": [{"errno": 1023, "field": "ids", "message": "Invalid"}]}}
    requests_mock.get(VENDORS, json=refused, status_code=400)
    requests_mock.get(f"{VENDORS}/5", json={"response": {"result": {"bill_vendor": vendor(5)}}})
    requests_mock.get(f"{VENDORS}/6", status_code=404, json={"response": {"errors": []}})
    assert [v.fb_id for v in client.get_vendors([5, 6])] == [5]
    assert learnt.value(VENDOR_IDS) == "rejected"


def test_a_listed_bill_without_a_lines_key_is_marked_one_with_empty_lines_is_not(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    without = {k: v for k, v in dated(1, 7).items() if k != "lines"}
    requests_mock.get(BILLS, json=page("bills", [without, dated(2, 8)], 1, 1, 2))
    listed = {b.fb_id: b.lines_missing for b in client.list_bills()}
    assert listed == {1: True, 2: False}
    assert learnt.value(LIST_LINES) in ("omitted", "included")  # the last one seen


def test_a_fallback_is_warned_once_not_each_time_it_is_seen_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    moments = iter([NOW, NOW + timedelta(minutes=15), NOW + RECHECK_AFTER * 2])
    learnt = Learnt(now=lambda: next(moments))
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            learnt.learn(SORT_BILLS, "ignored", "seen")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "listing every bill each run" in warnings[0].getMessage()
    assert describe(learnt.facts)[0].startswith("sort by updated_at (bills): ignored, checked ")


@pytest.mark.parametrize(
    ("lag", "verdict"),
    [
        (timedelta(seconds=40), "UTC"),
        (timedelta(hours=5, seconds=40), "America/New_York"),  # December: EST, UTC-5
        (timedelta(hours=2), None),  # an event that waited: proves nothing
    ],
)
def test_vendor_times_are_told_from_the_lag_behind_the_webhook(
    lag: timedelta, verdict: str | None
) -> None:
    arrived = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    assert judge_vendor_times([(arrived - lag, arrived)]) == verdict


def test_a_sort_refused_inside_a_200_answer_is_a_refusal_too(
    requests_mock: rm.Mocker, client: FreshBooksClient, learnt: Learnt
) -> None:
    # FreshBooks may report an error with HTTP 200 (docs/FRESHBOOKS-BEHAVIOUR.md §4.3).
    refused = {"response": {"errors": [{"errno": 1004, "field": "sort", "message": "Invalid"}]}}
    listed = {"json": page("bills", [dated(1, 7)], 1, 1, 1)}
    requests_mock.get(BILLS, [{"json": refused}, listed])
    assert [b.fb_id for p in client.recent_bill_pages() for b in p] == [1]
    assert learnt.value(SORT_BILLS) == "rejected"
