"""Narrow HTTP behaviours of FreshBooksClient against requests-mock: no server, no waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import AuthRequiredError, RemoteError, RemoteUnavailableError
from fbstampli.freshbooks.client import (
    MAX_REREADS,
    MAX_RETRY_AFTER,
    FreshBooksClient,
    NotFoundError,
)
from fbstampli.freshbooks.oauth import TokenManager
from fbstampli.models import VisState
from fbstampli.models.token import Token

API = "https://api.fb.test"
BILLS = f"{API}/accounting/account/ABC123/bills/bills"
VENDORS = f"{API}/accounting/account/ABC123/bill_vendors/bill_vendors"
PAYMENTS = f"{API}/accounting/account/ABC123/bill_payments/bill_payments"
CALLBACKS = f"{API}/events/account/ABC123/events/callbacks"
TOKEN_URL = f"{API}/auth/oauth/token"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SETTINGS = FreshBooksSettings(
    api_url=API, client_id="cid", client_secret="csecret", max_retries=3, timeout_seconds=5
)


class MemoryStore:
    def __init__(self, token: Token | None) -> None:
        self.token = token
        self.saved: list[Token] = []

    def load(self) -> Token | None:
        return self.token

    def save(self, token: Token) -> None:
        self.saved.append(token)
        self.token = token


def token(access: str = "old-access", refresh: str = "old-refresh", hours: int = 10) -> Token:
    return Token(access, refresh, NOW + timedelta(hours=hours), "user:bills:read")


def bill(bill_id: int, currency: str = "USD") -> dict[str, Any]:
    return {
        "id": bill_id,
        "vendorid": 1,
        "issue_date": "2024-01-01",
        "currency_code": currency,
        "total_amount": {"amount": "10.00", "code": currency},
    }


def page(key: str, rows: list[Any], page_no: int, pages: int, total: int) -> dict[str, Any]:
    result = {key: rows, "page": page_no, "pages": pages, "per_page": 100, "total": total}
    return {"response": {"result": result}}


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def tokens() -> MemoryStore:
    return MemoryStore(token())


@pytest.fixture
def client(tokens: MemoryStore, sleeps: list[float]) -> Iterator[FreshBooksClient]:
    session = requests.Session()
    manager = TokenManager(SETTINGS, tokens, session=session, now=lambda: NOW)
    fb = FreshBooksClient(SETTINGS, manager, "ABC123", session=session, sleep=sleeps.append)
    yield fb
    fb.close()


def test_empty_result_stops_after_one_request(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(BILLS, json=page("bills", [], 1, 0, 0))
    assert list(client.list_bills()) == []
    assert requests_mock.call_count == 1


def test_paging_asks_100_per_page_and_stops_at_pages(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1), bill(2)], 1, 3, 5)},
            {"json": page("bills", [bill(3), bill(4)], 2, 3, 5)},
            {"json": page("bills", [bill(5)], 3, 3, 5)},
            {"json": page("bills", [bill(99)], 4, 3, 5)},  # must never be asked for
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1, 2, 3, 4, 5]
    assert [query(r)["page"] for r in requests_mock.request_history] == [["1"], ["2"], ["3"]]
    assert all(query(r)["per_page"] == ["100"] for r in requests_mock.request_history)


def test_page_beyond_last_returning_empty_list_stops(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # A server that under-reports `pages` is still walked until its list runs dry.
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1)], 1, 5, 1)},
            {"json": page("bills", [], 2, 5, 1)},
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1]
    assert requests_mock.call_count == 2


def test_a_row_that_slips_back_when_a_bill_is_deleted_mid_listing_is_still_read(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # Bill 2 is deleted while page 2 is read: bill 3 moves onto page 1, already read.
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1), bill(2)], 1, 2, 4)},
            {"json": page("bills", [bill(4)], 2, 2, 3)},
            {"json": page("bills", [bill(1), bill(3)], 1, 2, 3)},
            {"json": page("bills", [bill(4)], 2, 2, 3)},
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1, 2, 3, 4]
    assert [query(r)["page"] for r in requests_mock.request_history] == [["1"], ["2"], ["1"], ["2"]]


def test_a_listing_that_moved_gives_each_row_once_even_to_a_reader_that_stops_early(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # A bill created mid-listing pushes bill 2 down onto page 2: seen twice, given once.
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1), bill(2)], 1, 2, 3)},
            {"json": page("bills", [bill(2), bill(3)], 2, 2, 4)},
            {"json": page("bills", [bill(9), bill(1)], 1, 2, 4)},
            {"json": page("bills", [bill(2), bill(3)], 2, 2, 4)},
        ],
    )
    pages = client.recent_bill_pages()
    assert [b.fb_id for b in next(pages)] == [1, 2]
    # The page showing the new total is not handed out; the page before it is read again.
    assert [b.fb_id for b in next(pages)] == [9]
    assert [b.fb_id for b in next(pages)] == [3]
    assert list(pages) == []


def test_a_listing_that_never_holds_still_is_a_temporary_failure(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # Every answer shows a new total: a bill is created between any two requests.
    moving = [
        {"json": page("bills", [bill(n)], 2 - n % 2, 2, 10 + n)}
        for n in range(1, 2 * MAX_REREADS + 10)
    ]
    requests_mock.get(BILLS, moving)
    with pytest.raises(RemoteUnavailableError, match=r"kept changing.*next run reads it again"):
        list(client.list_bills())
    # Page 1, then (page 2 moved, page 1 again) until the re-reads are spent, then page 2.
    assert requests_mock.call_count == 2 * MAX_REREADS + 2


def test_a_list_that_shrinks_onto_an_empty_last_page_is_still_read_whole(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # Bill 1 is deleted while page 2 is asked for: page 2 comes back empty, bill 3 is on page 1.
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1), bill(2)], 1, 2, 3)},
            {"json": page("bills", [], 2, 1, 2)},
            {"json": page("bills", [bill(2), bill(3)], 1, 1, 2)},
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1, 2, 3]


def test_a_big_change_goes_back_as_many_pages_as_rows_could_have_slipped(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    # 150 bills vanish while page 3 is asked for: rows may have slid back by two pages.
    requests_mock.get(
        BILLS,
        [
            {"json": page("bills", [bill(1)], 1, 4, 400)},
            {"json": page("bills", [bill(2)], 2, 4, 400)},
            {"json": page("bills", [bill(3)], 3, 3, 250)},
            {"json": page("bills", [bill(4)], 1, 3, 250)},
            {"json": page("bills", [bill(5)], 2, 3, 250)},
            {"json": page("bills", [bill(6)], 3, 3, 250)},
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1, 2, 4, 5, 6]
    pages = [query(r)["page"][0] for r in requests_mock.request_history]
    assert pages == ["1", "2", "3", "1", "2", "3"]


def test_vendors_are_told_apart_by_vendorid_when_a_listing_is_read_again(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    def vendor(vendor_id: int) -> dict[str, Any]:
        return {"vendorid": vendor_id, "vendor_name": f"V{vendor_id}", "currency_code": "USD"}

    requests_mock.get(
        VENDORS,
        [
            {"json": page("bill_vendors", [vendor(1), vendor(2)], 1, 2, 4)},
            {"json": page("bill_vendors", [vendor(4)], 2, 2, 3)},
            {"json": page("bill_vendors", [vendor(1), vendor(3)], 1, 2, 3)},
            {"json": page("bill_vendors", [vendor(4)], 2, 2, 3)},
        ],
    )
    assert [v.fb_id for v in client.list_vendors()] == [1, 2, 3, 4]


def test_deleted_bills_are_asked_with_vis_state_1(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(BILLS, json=page("bills", [], 1, 0, 0))
    list(client.list_bills(vis_state=VisState.DELETED))
    assert query(requests_mock.last_request)["search[vis_state]"] == ["1"]


def test_get_bills_asks_100_ids_per_request(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    def answer(request: Any, context: Any) -> dict[str, Any]:
        ids = [int(i) for i in query(request)["search[ids][]"]]
        return page("bills", [bill(i) for i in ids], 1, 1, len(ids))

    requests_mock.get(BILLS, json=answer)
    bills = client.get_bills([*range(1, 251), 5, 6])  # duplicates are asked once
    assert len(bills) == 250
    sizes = [len(query(r)["search[ids][]"]) for r in requests_mock.request_history]
    assert sizes == [100, 100, 50]


def test_payment_without_currency_takes_its_bill_currency(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    payment = {"id": 3, "billid": 8, "amount": {"amount": "4.00"}, "paid_date": "2024-01-03"}
    requests_mock.get(PAYMENTS, json=page("bill_payments", [payment], 1, 1, 1))
    requests_mock.get(BILLS, json=page("bills", [bill(8, "GBP")], 1, 1, 1))
    (parsed,) = client.list_bill_payments()
    assert parsed.currency_code == "GBP"


def test_429_waits_retry_after_through_injected_sleep(
    requests_mock: rm.Mocker, client: FreshBooksClient, sleeps: list[float]
) -> None:
    requests_mock.get(
        BILLS,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": {}},
            {"status_code": 429, "headers": {"Retry-After": "86400"}, "json": {}},
            {"json": page("bills", [bill(1)], 1, 1, 1)},
        ],
    )
    assert [b.fb_id for b in client.list_bills()] == [1]
    assert sleeps == [7.0, MAX_RETRY_AFTER]


def test_5xx_is_retried_then_reported_as_unavailable_naming_the_host(
    requests_mock: rm.Mocker, client: FreshBooksClient, sleeps: list[float]
) -> None:
    requests_mock.get(BILLS, status_code=503, json={})
    with pytest.raises(RemoteUnavailableError, match=r"api\.fb\.test") as raised:
        list(client.list_bills())
    assert requests_mock.call_count == SETTINGS.max_retries + 1
    assert len(sleeps) == SETTINGS.max_retries
    assert all(0 < s <= 30.5 for s in sleeps)
    assert "old-access" not in str(raised.value)


def test_409_conflict_is_retried(requests_mock: rm.Mocker, client: FreshBooksClient) -> None:
    requests_mock.get(
        BILLS, [{"status_code": 409, "json": {}}, {"json": page("bills", [bill(1)], 1, 1, 1)}]
    )
    assert len(list(client.list_bills())) == 1


def test_connection_errors_and_timeouts_are_retried(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(
        BILLS,
        [
            {"exc": requests.ConnectionError("reset by peer")},
            {"exc": requests.ReadTimeout("slow")},
            {"json": page("bills", [bill(1)], 1, 1, 1)},
        ],
    )
    assert len(list(client.list_bills())) == 1


def test_unreachable_host_becomes_remote_unavailable(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(BILLS, exc=requests.ConnectionError("refused"))
    with pytest.raises(RemoteUnavailableError, match=r"api\.fb\.test did not answer"):
        list(client.list_bills())


def test_post_is_not_replayed_after_a_5xx(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.post(CALLBACKS, status_code=500, json={})
    with pytest.raises(RemoteUnavailableError):
        client.register_callback("bill", "https://hooks.example/fb")
    assert requests_mock.call_count == 1


def test_truncated_json_is_retried(requests_mock: rm.Mocker, client: FreshBooksClient) -> None:
    requests_mock.get(
        BILLS, [{"text": '{"response": {"res'}, {"json": page("bills", [bill(1)], 1, 1, 1)}]
    )
    assert len(list(client.list_bills())) == 1


def test_401_refreshes_once_saves_then_retries_with_the_new_token(
    requests_mock: rm.Mocker, client: FreshBooksClient, tokens: MemoryStore
) -> None:
    unauthenticated = {"error": "unauthenticated", "error_description": "Needs auth."}
    requests_mock.get(
        BILLS,
        [
            {"status_code": 401, "json": unauthenticated},
            {"json": page("bills", [bill(1)], 1, 1, 1)},
        ],
    )
    requests_mock.post(
        TOKEN_URL,
        json={
            "access_token": "new-access",
            "refresh_token": "new-refresh",
            "expires_in": 43200,
            "created_at": int(NOW.timestamp()),
            "scope": "user:bills:read",
        },
    )
    assert len(list(client.list_bills())) == 1
    assert [t.access_token for t in tokens.saved] == ["new-access"]
    token_request = requests_mock.request_history[1]
    assert token_request.json()["refresh_token"] == "old-refresh"
    last = requests_mock.last_request
    assert last is not None
    assert last.headers["Authorization"] == "Bearer new-access"


def test_401_after_refresh_requires_login(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(BILLS, status_code=401, json={"errno": 401, "message": "invalid_token"})
    requests_mock.post(
        TOKEN_URL,
        json={"access_token": "a2", "refresh_token": "r2", "expires_in": 60, "created_at": 0},
    )
    with pytest.raises(AuthRequiredError, match="even after a refresh"):
        list(client.list_bills())
    assert [r.method for r in requests_mock.request_history] == ["GET", "POST", "GET"]


def test_invalid_grant_on_refresh_requires_login(
    requests_mock: rm.Mocker, client: FreshBooksClient, tokens: MemoryStore
) -> None:
    requests_mock.get(BILLS, status_code=401, json={})
    requests_mock.post(
        TOKEN_URL,
        status_code=400,
        json={"error": "invalid_grant", "error_description": "The provided grant is invalid."},
    )
    with pytest.raises(
        AuthRequiredError,
        match="FreshBooks rejected the refresh token; run `fbstampli auth login`",
    ):
        list(client.list_bills())
    assert tokens.saved == []


def test_403_names_missing_scopes(requests_mock: rm.Mocker, client: FreshBooksClient) -> None:
    requests_mock.get(
        BILLS,
        status_code=403,
        json={
            "errno": 1003,
            "message": "Scopes granted: user:profile:read; needed: user:bills:read",
        },
    )
    with pytest.raises(AuthRequiredError, match=r"scope.*user:bills:read"):
        list(client.list_bills())


def test_classic_error_with_http_200_is_an_error(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    body = {"response": {"errors": [{"errno": 1042, "message": "Account inactive."}]}}
    requests_mock.get(BILLS, json=body)
    with pytest.raises(RemoteError, match=r"bills list of account ABC123.*Account inactive"):
        list(client.list_bills())


def test_grpc_style_404_names_the_object(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(
        f"{BILLS}/77",
        status_code=404,
        json={
            "code": 5,
            "message": "Request failed with status_code: 404",
            "details": [{"reason": "1012", "metadata": {"message": "Bill not found."}}],
        },
    )
    assert client.get_bill(77) is None
    requests_mock.get(BILLS, status_code=404, json={"code": 5, "message": "Not found"})
    with pytest.raises(NotFoundError, match="bills list of account ABC123"):
        list(client.list_bills())


def test_events_validation_error_is_a_remote_error(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.post(
        CALLBACKS,
        status_code=422,
        json={"errno": 422, "message": "Invalid data", "details": ["event: Unrecognized event."]},
    )
    with pytest.raises(RemoteError, match=r"registering a bills\.create callback.*Unrecognized"):
        client.register_callback("bills.create", "https://hooks.example/fb")


def test_missing_envelope_is_a_remote_error(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    requests_mock.get(BILLS, json={"bills": []})
    with pytest.raises(RemoteError, match="envelope"):
        list(client.list_bills())


def test_me_lists_business_memberships(requests_mock: rm.Mocker, client: FreshBooksClient) -> None:
    requests_mock.get(
        f"{API}/auth/api/v1/users/me",
        json={
            "response": {
                "id": 1,
                "business_memberships": [
                    {
                        "id": 9,
                        "role": "owner",
                        "business": {"id": 4, "name": "A", "account_id": "X1"},
                    }
                ],
            }
        },
    )
    (membership,) = client.me()
    assert (membership.account_id, membership.business_id) == ("X1", 4)


def test_not_logged_in_requires_login(sleeps: list[float]) -> None:
    manager = TokenManager(SETTINGS, MemoryStore(None), now=lambda: NOW)
    fb = FreshBooksClient(SETTINGS, manager, "ABC123", sleep=sleeps.append)
    with pytest.raises(AuthRequiredError, match="not logged in"):
        list(fb.list_bills())


def payment_row(payment_id: int, bill_id: int) -> dict[str, Any]:
    amount = {"amount": "4.00", "code": "USD"}
    return {"id": payment_id, "billid": bill_id, "amount": amount, "paid_date": "2024-01-03"}


def test_payments_of_bills_are_read_one_billid_search_per_bill(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    def answer(request: Any, context: Any) -> dict[str, Any]:
        bill_id = int(query(request)["search[billid]"][0])
        return page("bill_payments", [payment_row(bill_id * 10, bill_id)], 1, 1, 1)

    requests_mock.get(PAYMENTS, json=answer)
    payments = list(client.bill_payments_of([4, 7, 4]))
    assert [(p.fb_id, p.bill_id) for p in payments] == [(40, 4), (70, 7)]
    asked = [query(r)["search[billid]"] for r in requests_mock.request_history]
    assert asked == [["4"], ["7"]]


def test_ignored_billid_search_costs_one_page_not_the_whole_history(
    requests_mock: rm.Mocker, client: FreshBooksClient
) -> None:
    everything = [payment_row(i, i) for i in range(1, 101)]
    requests_mock.get(PAYMENTS, json=page("bill_payments", everything, 1, 50, 5000))
    payments = list(client.bill_payments_of([3]))
    assert len(requests_mock.request_history) == 1
    assert {p.bill_id for p in payments} > {3}  # the caller sees the foreign bills
