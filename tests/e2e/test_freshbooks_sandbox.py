"""The real FreshBooks client against the real sandbox over HTTP on 127.0.0.1.

Retries sleep through an injected recorder, so nothing here waits on the wall
clock; the sandbox counts requests on arrival, so counts are exact.
"""

from __future__ import annotations

import queue
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from fbstampli.config import FreshBooksSettings
from fbstampli.errors import AuthRequiredError, RemoteError, RemoteUnavailableError
from fbstampli.freshbooks.client import FreshBooksClient, NotFoundError, PageCallback
from fbstampli.freshbooks.oauth import (
    TokenManager,
    authorize_url,
    exchange_code,
    parse_redirect,
    refresh_token,
    revoke,
)
from fbstampli.freshbooks.webhooks import (
    SIGNATURE_HEADER,
    parse_event,
    parse_verification,
    verify_signature,
)
from fbstampli.models import VisState
from fbstampli.models.token import Token
from fbstampli.sandbox.fb_data import Business
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from tests.support.cli import read_lines_until, run, start

REDIRECT = "https://localhost:8765/callback"
BILLS_PATH = "/accounting/account/ABC123/bills/bills"


class RecordingStore:
    """A TokenStore that notes, at each save, how many bill lists the sandbox had seen."""

    def __init__(self, sandbox: FreshBooksSandbox) -> None:
        self.sandbox = sandbox
        self.token: Token | None = None
        self.saves: list[tuple[str, int]] = []

    def load(self) -> Token | None:
        return self.token

    def save(self, token: Token) -> None:
        self.saves.append((token.access_token, self.sandbox.count("GET", "bills.list")))
        self.token = token


@dataclass
class Harness:
    fb: FreshBooksSandbox
    settings: FreshBooksSettings
    store: RecordingStore
    session: requests.Session
    sleeps: list[float]

    def login(self, scope: str | None = None) -> Token:
        """The operator's login, minus the browser: follow the authorize URL's redirect."""
        state = "state-123"
        settings = self.settings if scope is None else replace(self.settings, scopes=scope)
        url = authorize_url(settings, state)
        answer = self.session.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 302
        code = parse_redirect(answer.headers["Location"], state=state)
        token = exchange_code(self.session, self.settings, code)
        self.store.save(token)
        return token

    def client(
        self,
        account_id: str = "ABC123",
        *,
        now: Callable[[], datetime] | None = None,
        on_page: PageCallback | None = None,
        **settings: Any,
    ) -> FreshBooksClient:
        chosen = replace(self.settings, **settings)
        manager = TokenManager(
            chosen, self.store, session=self.session, now=now or (lambda: datetime.now(UTC))
        )
        return FreshBooksClient(
            chosen,
            manager,
            account_id,
            session=self.session,
            sleep=self.sleeps.append,
            on_page=on_page,
        )


def make_harness(fb: FreshBooksSandbox) -> Harness:
    settings = FreshBooksSettings(
        api_url=fb.url,
        auth_url=fb.url,
        client_id=fb.client_id,
        client_secret=fb.client_secret,
        redirect_uri=REDIRECT,
        timeout_seconds=5,
        max_retries=5,
    )
    return Harness(fb, settings, RecordingStore(fb), requests.Session(), [])


@pytest.fixture
def fb() -> Iterator[FreshBooksSandbox]:
    with FreshBooksSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def harness(fb: FreshBooksSandbox) -> Iterator[Harness]:
    made = make_harness(fb)
    yield made
    made.session.close()


# ---- OAuth -------------------------------------------------------------------------------------


def test_login_by_code_exchange_reaches_the_business(harness: Harness) -> None:
    harness.login()
    (membership,) = harness.client().me()
    assert (membership.account_id, membership.business_id) == ("ABC123", 439000)


def test_me_lists_every_business_of_the_login() -> None:
    businesses = [Business("ABC123", 1, "First"), Business("XYZ789", 2, "Second", "accountant")]
    with FreshBooksSandbox(businesses=businesses) as fb:
        harness = make_harness(fb)
        harness.login()
        found = [(m.account_id, m.role) for m in harness.client().me()]
    assert found == [("ABC123", "owner"), ("XYZ789", "accountant")]


def test_spent_refresh_token_requires_login(harness: Harness) -> None:
    first = harness.login()
    second = refresh_token(harness.session, harness.settings, first)
    assert second.refresh_token != first.refresh_token
    with pytest.raises(AuthRequiredError, match="rejected the refresh token") as raised:
        refresh_token(harness.session, harness.settings, first)
    assert first.refresh_token not in str(raised.value)
    third = refresh_token(harness.session, harness.settings, second)  # the new one still works
    assert third.access_token


def test_authorization_code_works_only_once(harness: Harness) -> None:
    code = harness.fb.issue_code(REDIRECT)
    exchange_code(harness.session, harness.settings, code)
    with pytest.raises(AuthRequiredError, match="authorization code"):
        exchange_code(harness.session, harness.settings, code)


def test_token_manager_saves_the_rotated_pair_before_retrying_after_401(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=3, payments=0)
    old = harness.login()
    harness.fb.expire_access_tokens()
    bills = list(harness.client().list_bills())
    assert len(bills) == 3
    new_access, lists_seen_at_save = harness.store.saves[-1]
    assert new_access != old.access_token
    assert lists_seen_at_save == 1  # saved after the 401'd request, before the retry
    assert harness.fb.count("GET", "bills.list") == 2
    assert harness.fb.count("POST", "token") == 2  # login + one refresh


def test_token_near_expiry_is_refreshed_and_saved_before_the_first_request(
    harness: Harness,
) -> None:
    harness.fb.seed(vendors=1, bills=1, payments=0)
    token = harness.login()
    soon = token.expires_at - timedelta(minutes=2)
    client = harness.client(now=lambda: soon)
    assert len(list(client.list_bills())) == 1
    assert harness.store.saves[-1][1] == 0  # nothing was listed before the save
    assert [r.status for r in harness.fb.requests if r.kind == "bills.list"] == [200]


def test_missing_scope_requires_login_naming_the_scope(harness: Harness) -> None:
    harness.login(scope="user:profile:read")
    with pytest.raises(AuthRequiredError, match=r"user:bills:read"):
        list(harness.client().list_bills())


def test_logged_out_token_is_refused_after_revoke(harness: Harness) -> None:
    token = harness.login()
    revoke(harness.session, harness.settings, token)
    with pytest.raises(AuthRequiredError):
        list(harness.client().list_bills())


# ---- retries -----------------------------------------------------------------------------------


def test_429_storm_is_waited_out_honouring_retry_after(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=5, payments=0)
    harness.login()
    storm = harness.fb.rate_limit(BILLS_PATH, times=4, retry_after=3)
    assert len(list(harness.client().list_bills())) == 5
    assert storm.used == 4
    assert harness.sleeps == [3.0, 3.0, 3.0, 3.0]
    assert harness.fb.count("GET", "bills.list") == 5


def test_500_burst_is_retried_with_backoff(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=5, payments=0)
    harness.login()
    burst = harness.fb.fail(BILLS_PATH, times=3, status=503)
    assert len(list(harness.client().list_bills())) == 5
    assert burst.used == 3
    assert len(harness.sleeps) == 3
    assert harness.sleeps[0] < harness.sleeps[2]  # exponential (jitter is at most 0.5 s)


def test_dropped_connection_is_retried(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=5, payments=0)
    harness.login()
    drop = harness.fb.drop(BILLS_PATH, times=2)
    assert len(list(harness.client().list_bills())) == 5
    assert drop.used == 2
    assert [r.status for r in harness.fb.requests if r.kind == "bills.list"] == [0, 0, 200]


def test_truncated_json_is_retried(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=5, payments=0)
    harness.login()
    harness.fb.truncate(BILLS_PATH, times=1)
    assert len(list(harness.client().list_bills())) == 5
    assert harness.fb.count("GET", "bills.list") == 2


def test_read_timeout_is_retried(harness: Harness) -> None:
    harness.fb.seed(vendors=1, bills=1, payments=0)
    harness.login()
    harness.fb.delay(BILLS_PATH, seconds=1.0, times=1)
    client = harness.client(timeout_seconds=0.2)
    assert len(list(client.list_bills())) == 1
    assert harness.fb.count("GET", "bills.list") == 2


def test_endless_failures_become_remote_unavailable_naming_the_host_only(
    harness: Harness,
) -> None:
    token = harness.login()
    harness.fb.fail(BILLS_PATH, times=100, status=502)
    with pytest.raises(RemoteUnavailableError, match=r"127\.0\.0\.1") as raised:
        list(harness.client(max_retries=2).list_bills())
    assert harness.fb.count("GET", "bills.list") == 3
    assert token.access_token not in str(raised.value)
    assert token.refresh_token not in str(raised.value)


def test_held_request_waits_until_released(harness: Harness) -> None:
    harness.fb.seed(vendors=1, bills=2, payments=0)
    harness.login()
    hold = harness.fb.hold(BILLS_PATH)
    results: list[int] = []
    worker = threading.Thread(
        target=lambda: results.append(len(list(harness.client().list_bills())))
    )
    worker.start()
    assert hold.arrived.wait(5)
    assert results == []  # frozen mid-request
    hold.release()
    worker.join(5)
    assert results == [2]


# ---- paging and filters ------------------------------------------------------------------------


def test_listing_10000_bills_uses_exactly_100_list_requests(harness: Harness) -> None:
    harness.fb.seed(vendors=40, bills=10_000, payments=0)
    harness.login()
    pages: list[int] = []
    client = harness.client(on_page=lambda progress: pages.append(progress.page))
    ids = [bill.fb_id for bill in client.list_bills()]
    assert len(ids) == len(set(ids)) == 10_000
    assert harness.fb.count("GET", "bills.list") == 100  # ceil(10000 / 100)
    assert pages == list(range(1, 101))


def test_fetching_by_ids_asks_100_per_request(harness: Harness) -> None:
    harness.fb.seed(vendors=5, bills=300, payments=0)
    harness.login()
    bills = harness.client().get_bills(range(1, 251))
    assert sorted(b.fb_id for b in bills) == list(range(1, 251))
    asked = [len(r.query["search[ids][]"]) for r in harness.fb.requests if r.kind == "bills.list"]
    assert asked == [100, 100, 50]


def test_deleted_bills_are_only_listed_with_vis_state_1(harness: Harness) -> None:
    harness.fb.seed(vendors=3, bills=20, payments=0)
    harness.login()
    harness.fb.delete_bill(3)
    harness.fb.delete_bill(7)
    harness.fb.update_bill(5, vis_state=2)
    client = harness.client()
    listed = {b.fb_id for b in client.list_bills()}
    assert {3, 7}.isdisjoint(listed)
    assert 5 in listed  # archived bills are listed by default
    deleted = list(client.list_bills(vis_state=VisState.DELETED))
    assert [b.fb_id for b in deleted] == [3, 7]
    assert all(b.vis_state is VisState.DELETED for b in deleted)
    assert client.get_bill(3) is not None  # still readable by id


def test_update_bumps_updated_at(harness: Harness) -> None:
    harness.fb.seed(vendors=1, bills=1, payments=0)
    harness.login()
    client = harness.client()
    before = client.get_bills([1])[0]
    harness.fb.update_bill(1, bill_number="CHANGED")
    harness.fb.update_bill(1, bill_number="CHANGED-AGAIN")
    after = client.get_bills([1])[0]
    assert after.bill_number == "CHANGED-AGAIN"
    assert before.updated_at is not None
    assert after.updated_at is not None
    assert after.updated_at >= before.updated_at + timedelta(seconds=2)


def test_seeded_payments_add_up_to_what_each_bill_says_is_paid(harness: Harness) -> None:
    harness.fb.seed(vendors=5, bills=60, payments=40)
    harness.login()
    client = harness.client()
    bills = {b.fb_id: b for b in client.list_bills()}
    paid: dict[int, Decimal] = {}
    for payment in client.list_bill_payments():
        assert payment.currency_code == bills[payment.bill_id].currency_code
        paid[payment.bill_id] = paid.get(payment.bill_id, Decimal(0)) + payment.amount
    assert paid  # the seed did create payments
    for bill in bills.values():
        assert paid.get(bill.fb_id, Decimal(0)) == bill.paid
        assert bill.total_amount == bill.amount + bill.tax_amount
        assert bill.status in {"paid", "partial", "unpaid", "overdue"}
    assert {v.fb_id for v in client.list_vendors()} >= {b.vendor_id for b in bills.values()}


def test_raw_api_caps_per_page_and_returns_empty_beyond_last_page(harness: Harness) -> None:
    harness.fb.seed(vendors=2, bills=130, payments=0)
    token = harness.login()
    headers = {"Authorization": f"Bearer {token.access_token}"}
    url = harness.fb.url + BILLS_PATH
    first = harness.session.get(url, params={"per_page": 500}, headers=headers, timeout=5).json()
    result = first["response"]["result"]
    assert (result["per_page"], result["pages"], result["total"], len(result["bills"])) == (
        100,
        2,
        130,
        100,
    )
    beyond = harness.session.get(
        url, params={"page": 9, "per_page": 100}, headers=headers, timeout=5
    )
    assert beyond.json()["response"]["result"]["bills"] == []
    with_vendor = harness.session.get(
        url, params={"include[]": "vendor", "search[vendorid]": "1"}, headers=headers, timeout=5
    ).json()["response"]["result"]["bills"]
    assert with_vendor
    assert all(b["vendor"]["vendorid"] == 1 == b["vendorid"] for b in with_vendor)


def test_unknown_account_is_not_found(harness: Harness) -> None:
    harness.login()
    with pytest.raises(NotFoundError, match="NOPE"):
        list(harness.client(account_id="NOPE").list_bills())


def test_seeding_is_deterministic(fb: FreshBooksSandbox) -> None:
    fixed = datetime.fromisoformat("2024-06-01T00:00:00+00:00")
    one = FreshBooksSandbox(now=lambda: fixed)
    two = FreshBooksSandbox(now=lambda: fixed)
    try:
        one.seed(vendors=5, bills=30, payments=10, seed=42)
        two.seed(vendors=5, bills=30, payments=10, seed=42)
        render = [one.data.render_bill(b) for b in one.data.bills.values()]
        assert render == [two.data.render_bill(b) for b in two.data.bills.values()]
        assert len({b["currency_code"] for b in render}) >= 1
    finally:
        one.stop()
        two.stop()


# ---- webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A tiny webhook endpoint that queues (path, signature, raw body)."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[str, str | None, bytes]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.put((self.path, self.headers.get(SIGNATURE_HEADER), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fb/hooks"

    def next(self) -> tuple[str, str | None, bytes]:
        return self.received.get(timeout=5)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def test_webhook_handshake_then_signed_event_verifies(harness: Harness, receiver: Receiver) -> None:
    harness.fb.seed(vendors=1, bills=2, payments=0)
    harness.login()
    client = harness.client()
    callback = client.register_callback("bill", receiver.url)
    assert not callback.verified

    _, handshake_signature, handshake_body = receiver.next()
    request = parse_verification(handshake_body)
    assert request is not None
    assert request.callback_id == callback.callback_id
    assert verify_signature(handshake_body, handshake_signature, request.verifier)

    assert client.verify_callback(callback.callback_id, request.verifier).verified
    assert [c.verified for c in client.list_callbacks()] == [True]

    deliveries = harness.fb.send_event("bill.update", 2)
    assert [d.status for d in deliveries] == [200]
    _, signature, body = receiver.next()
    assert verify_signature(body, signature, request.verifier)
    assert not verify_signature(
        body.replace(b"object_id=2", b"object_id=1"), signature, request.verifier
    )
    event = parse_event(body)
    assert event is not None
    assert (event.name, event.object_id, event.account_id, event.business_id) == (
        "bill.update",
        2,
        "ABC123",
        439000,
    )


def test_unverified_or_unrelated_callbacks_get_no_events(
    harness: Harness, receiver: Receiver
) -> None:
    harness.login()
    client = harness.client()
    client.register_callback("bill.update", receiver.url)  # never verified
    vendor_hook = client.register_callback("bill_vendor", receiver.url)
    verifier = None
    for _ in range(2):
        request = parse_verification(receiver.next()[2])
        assert request is not None
        if request.callback_id == vendor_hook.callback_id:
            verifier = request.verifier
    assert verifier is not None
    client.verify_callback(vendor_hook.callback_id, verifier)
    assert harness.fb.send_event("bill.update", 1) == []


def test_wrong_verifier_is_refused(harness: Harness, receiver: Receiver) -> None:
    harness.login()
    client = harness.client()
    callback = client.register_callback("bill", receiver.url)
    receiver.next()
    with pytest.raises(RemoteError, match=f"verifying callback {callback.callback_id}"):
        client.verify_callback(callback.callback_id, "not-the-verifier")


def test_resend_verification_sends_the_same_verifier_again(
    harness: Harness, receiver: Receiver
) -> None:
    harness.login()
    client = harness.client()
    callback = client.register_callback("bill", receiver.url)
    first = parse_verification(receiver.next()[2])
    client.resend_verification(callback.callback_id)
    second = parse_verification(receiver.next()[2])
    assert first is not None
    assert second is not None
    assert first.verifier == second.verifier


def test_deleted_callback_is_gone(harness: Harness, receiver: Receiver) -> None:
    harness.login()
    client = harness.client()
    callback = client.register_callback("bill", receiver.url)
    client.delete_callback(callback.callback_id)
    assert client.list_callbacks() == []
    assert harness.fb.count("DELETE", "callbacks.delete") == 1


def test_mutations_emit_events_when_asked(receiver: Receiver) -> None:
    with FreshBooksSandbox(emit_events=True) as fb:
        fb.seed(vendors=1, bills=1, payments=0)
        harness = make_harness(fb)
        harness.login()
        client = harness.client()
        callback = client.register_callback("bill", receiver.url)
        request = parse_verification(receiver.next()[2])
        assert request is not None
        client.verify_callback(callback.callback_id, request.verifier)
        fb.create_payment(1)  # a payment changes its bill: bill.update
        event = parse_event(receiver.next()[2])
        assert event is not None
        assert (event.name, event.object_id) == ("bill.update", 1)


def test_the_sandbox_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    # systemd and `kill` stop a service with SIGTERM; it should end as Ctrl-C ends it.
    process = start(tmp_path / "no-home", "sandbox", "freshbooks", "--port", "0", "--bills", "3")
    try:
        banner = read_lines_until(process, lambda line: line.endswith("Ctrl-C stops"))
        assert banner[0].startswith("FreshBooks sandbox at http://127.0.0.1:")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert stderr == ""
    assert stdout.strip() == "stopped"


def test_the_sandbox_command_names_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(tmp_path / "no-home", "sandbox", "freshbooks", "--port", str(port))
    assert result.code == 2, result.stderr
    assert result.stderr.startswith(f"fbstampli: error: cannot listen on 127.0.0.1:{port}")
    assert "choose another --host or --port" in result.stderr
