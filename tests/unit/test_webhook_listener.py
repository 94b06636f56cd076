"""The webhook listener over real HTTP on 127.0.0.1 and a real encrypted store; the worker alone.

The push itself is replaced by a counting `drain`, so these tests pin down
what the HTTP edge accepts, rejects and stores, and how the worker schedules.
"""

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest

from fbstampli.clock import SystemClock
from fbstampli.errors import LockHeldError, RemoteUnavailableError
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.listener import HEALTH_PATH, WEBHOOK_PATH, Listener, Worker
from fbstampli.store import Store, credentials
from fbstampli.store import events as hooks
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from tests.support.local_http import request_json

VERIFIER = "verifier-of-callback-7"
ACCOUNT = "ABC123"
EVENT = (
    ("name", "bill.create"),
    ("object_id", "1001"),
    ("account_id", ACCOUNT),
    ("business_id", "439000"),
    ("identity_id", "1"),
    ("user_id", "1"),
)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.01)


@dataclass
class Served:
    listener: Listener
    store: Store
    wakes: list[float] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.address[1]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, object]]:
        return request_json(self.port, method, path, body, headers)

    def post(
        self, pairs: tuple[tuple[str, str], ...], signature: str | None
    ) -> tuple[int, dict[str, object]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return self.request("POST", WEBHOOK_PATH, urlencode(pairs).encode(), headers)

    def event_rows(self) -> list[tuple[str, int, str]]:
        return [
            (row["name"], row["object_id"], row["account_id"])
            for row in self.store.query("SELECT name, object_id, account_id FROM events")
        ]

    def healthy(self) -> bool:
        return self.request("GET", HEALTH_PATH)[0] == 200


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()  # the listener's timeouts are real


@pytest.fixture
def store(store: Store) -> Store:
    """The shared store, logged in to ACCOUNT with one confirmed verifier."""
    with store.transaction():
        credentials.choose_business(store, credentials.Business(ACCOUNT, "1", "Test"))
    hooks.confirm_verifier(store, 7, VERIFIER)
    return store


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    wakes: list[float] = []
    listener = Listener(
        store,
        wake=lambda: wakes.append(time.monotonic()),
        port=0,
        max_body_bytes=2048,
        request_timeout=0.5,
    ).start()
    yield Served(listener, store, wakes)
    listener.stop()


# ---- accepted ---------------------------------------------------------------------------------


def test_signed_event_is_queued_answered_200_and_wakes_the_worker(served: Served) -> None:
    status, answer = served.post(EVENT, sign(EVENT, VERIFIER))
    assert (status, answer) == (200, {"result": "queued"})
    assert served.event_rows() == [("bill.create", 1001, ACCOUNT)]
    assert len(served.wakes) == 1


def test_event_signed_by_any_confirmed_verifier_is_accepted(served: Served) -> None:
    hooks.confirm_verifier(served.store, 8, "verifier-of-callback-8")
    vendor_event = (("name", "bill_vendor.update"), ("object_id", "55"), ("account_id", ACCOUNT))
    status, _ = served.post(vendor_event, sign(vendor_event, "verifier-of-callback-8"))
    assert status == 200
    assert served.event_rows() == [("bill_vendor.update", 55, ACCOUNT)]


def test_duplicate_delivery_adds_no_second_row(served: Served) -> None:
    signature = sign(EVENT, VERIFIER)
    assert served.post(EVENT, signature)[0] == 200
    status, answer = served.post(EVENT, signature)
    assert (status, answer) == (200, {"result": "queued already"})
    assert len(served.event_rows()) == 1


def test_same_event_after_processing_is_queued_again(served: Served) -> None:
    assert served.post(EVENT, sign(EVENT, VERIFIER))[0] == 200
    served.store.execute("UPDATE events SET processed_at = ?", (served.store.now_text(),))
    assert served.post(EVENT, sign(EVENT, VERIFIER))[0] == 200
    assert len(served.event_rows()) == 2


def test_event_of_another_resource_is_acknowledged_not_queued(served: Served) -> None:
    invoice = (("name", "invoice.create"), ("object_id", "9"), ("account_id", ACCOUNT))
    status, _ = served.post(invoice, sign(invoice, VERIFIER))
    assert status == 200
    assert served.event_rows() == []


def test_event_for_another_account_is_acknowledged_not_queued(served: Served) -> None:
    other = (("name", "bill.create"), ("object_id", "9"), ("account_id", "OTHER"))
    status, _ = served.post(other, sign(other, VERIFIER))
    assert status == 200
    assert served.event_rows() == []


def test_concurrent_events_are_all_queued(served: Served) -> None:
    events = [
        (("name", "bill.create"), ("object_id", str(2000 + n)), ("account_id", ACCOUNT))
        for n in range(50)
    ]
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda e: served.post(e, sign(e, VERIFIER))[0], events))
    assert statuses == [200] * 50
    assert sorted(row[1] for row in served.event_rows()) == list(range(2000, 2050))


# ---- the verification handshake -----------------------------------------------------------


def test_handshake_keeps_the_verifier_pending_until_freshbooks_confirms(served: Served) -> None:
    hooks.open_handshake_window(served.store, 600, {12})
    status, _ = served.post((("verifier", "new-code"), ("object_id", "12")), None)
    assert status == 200
    assert hooks.pending_verifiers(served.store) == {12: "new-code"}
    assert 12 not in hooks.confirmed_verifiers(served.store)
    assert served.wakes == []  # the waiting command confirms it, not the worker
    event = (("name", "bill.update"), ("object_id", "3"), ("account_id", ACCOUNT))
    assert served.post(event, sign(event, "new-code"))[0] == 401  # not a key until confirmed


def test_handshake_repeating_a_confirmed_verifier_changes_nothing(served: Served) -> None:
    hooks.open_handshake_window(served.store, 600, {7})
    assert served.post((("verifier", VERIFIER), ("object_id", "7")), None)[0] == 200
    assert hooks.pending_verifiers(served.store) == {}
    assert served.wakes == []


def test_handshake_nobody_awaits_is_answered_counted_and_stores_nothing(served: Served) -> None:
    statuses = [
        served.post((("verifier", f"forged-{n}"), ("object_id", str(100 + n))), None)[0]
        for n in range(20)
    ]
    assert statuses == [202] * 20
    assert hooks.pending_verifiers(served.store) == {}
    assert served.wakes == []
    assert served.request("GET", HEALTH_PATH)[1]["handshakes_ignored"] == 20


def test_handshake_for_a_callback_the_window_does_not_name_is_ignored(served: Served) -> None:
    hooks.open_handshake_window(served.store, 600, {12})
    assert served.post((("verifier", "forged"), ("object_id", "13")), None)[0] == 202
    assert served.post((("verifier", "real"), ("object_id", "12")), None)[0] == 200
    assert hooks.pending_verifiers(served.store) == {12: "real"}


def test_handshake_after_the_window_closed_is_ignored(served: Served) -> None:
    hooks.open_handshake_window(served.store, 0.2, {12})
    time.sleep(0.3)
    assert served.post((("verifier", "late"), ("object_id", "12")), None)[0] == 202
    assert hooks.pending_verifiers(served.store) == {}


def test_flood_during_a_registration_window_is_bounded(served: Served) -> None:
    hooks.open_handshake_window(served.store, 600, None)  # ids not known yet: any is admitted
    statuses = [
        served.post((("verifier", f"forged-{n}"), ("object_id", str(100 + n))), None)[0]
        for n in range(20)
    ]
    assert statuses.count(200) == 16
    assert set(statuses[16:]) == {202}
    assert len(hooks.pending_verifiers(served.store)) == 16
    hooks.open_handshake_window(served.store, 600, {103})  # FreshBooks answered: id 103
    assert hooks.pending_verifiers(served.store) == {103: "forged-3"}


def test_codes_for_one_callback_are_kept_side_by_side_a_few_newest(served: Served) -> None:
    hooks.open_handshake_window(served.store, 600, {12})
    for code in ["genuine", "forged-1", "forged-2", "forged-3", "forged-4"]:
        assert served.post((("verifier", code), ("object_id", "12")), None)[0] == 200
    kept = ["forged-1", "forged-2", "forged-3", "forged-4"]
    assert hooks.pending_candidates(served.store) == {12: kept}
    assert len(kept) == hooks.MAX_CANDIDATES
    hooks.drop_pending_verifier(served.store, 12, "forged-2")  # FreshBooks refused that one
    assert hooks.pending_candidates(served.store) == {12: ["forged-1", "forged-3", "forged-4"]}
    hooks.confirm_verifier(served.store, 12, "forged-3")  # FreshBooks took that one
    assert hooks.pending_candidates(served.store) == {}


def test_a_window_closes_when_the_process_that_opened_it_ends(served: Served) -> None:
    code = (
        "import json, sys\n"
        "from fbstampli.store import holder\n"
        "print(json.dumps(holder.this_process()), flush=True)\n"
        "sys.stdin.read()\n"
    )
    opener = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert opener.stdout is not None
    assert opener.stdin is not None
    identity = json.loads(opener.stdout.readline())
    until = hooks.open_handshake_window(served.store, 600, None).until
    with served.store.transaction():  # as if that process had opened it
        record = {"until": until, "callback_ids": None, "holder": identity}
        served.store.put_json(hooks.WINDOW_KEY, record)
    assert served.post((("verifier", "while-alive"), ("object_id", "12")), None)[0] == 200
    opener.kill()
    opener.wait(10)
    opener.stdin.close()
    opener.stdout.close()
    assert served.post((("verifier", "after-death"), ("object_id", "13")), None)[0] == 202
    assert hooks.handshake_window(served.store) is None


def test_only_a_signed_event_keeps_its_connection_open(served: Served) -> None:
    def post(
        sock: socket.socket, pairs: tuple[tuple[str, str], ...], signed: bool
    ) -> tuple[int, str | None]:
        body = urlencode(pairs).encode()
        signature = f"{SIGNATURE_HEADER}: {sign(pairs, VERIFIER)}\r\n" if signed else ""
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"{signature}\r\n".encode()
            + body
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        response.read()
        return response.status, response.getheader("Connection")

    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        assert post(sock, EVENT, signed=True) == (200, None)
        assert post(sock, EVENT, signed=True) == (200, None)  # FreshBooks may send the next on it
        assert post(sock, EVENT, signed=False) == (401, "close")
        assert sock.recv(1) == b""  # closed after the unsigned one


# ---- rejected, with nothing stored --------------------------------------------------------


def _tampered() -> tuple[bytes, str]:
    signature = sign(EVENT, VERIFIER)
    changed = tuple((k, "1002" if k == "object_id" else v) for k, v in EVENT)
    return urlencode(changed).encode(), signature


def _reordered() -> tuple[bytes, str]:
    return urlencode(tuple(reversed(EVENT))).encode(), sign(EVENT, VERIFIER)


REJECTED: dict[str, tuple[Callable[[], tuple[bytes, str | None]], int]] = {
    "missing signature": (lambda: (urlencode(EVENT).encode(), None), 401),
    "bad signature": (lambda: (urlencode(EVENT).encode(), "bm90IGEgc2lnbmF0dXJl"), 401),
    "wrong key": (lambda: (urlencode(EVENT).encode(), sign(EVENT, "someone-else")), 401),
    "tampered field": (_tampered, 401),
    "reordered fields": (_reordered, 401),
    "hex instead of base64": (
        lambda: (urlencode(EVENT).encode(), sign(EVENT, VERIFIER).encode().hex()),
        401,
    ),
    "garbage body": (lambda: (b"\x00garbage without fields", sign(EVENT, VERIFIER)), 400),
    "not UTF-8": (lambda: (b"name=bill.create&object_id=\xff\xfe", sign(EVENT, VERIFIER)), 400),
    "form without event fields": (lambda: (b"hello=world", sign(EVENT, VERIFIER)), 400),
    "signed but malformed id": (
        lambda: (
            urlencode(
                bad := (("name", "bill.create"), ("object_id", "x"), ("account_id", "A"))
            ).encode(),
            sign(bad, VERIFIER),
        ),
        400,
    ),
    **{
        f"signed with object id {label}": (
            lambda value=value: (
                urlencode(
                    odd := (("name", "bill.create"), ("object_id", value), ("account_id", "A"))
                ).encode(),
                sign(odd, VERIFIER),
            ),
            400,
        )
        for label, value in (("²", "²"), ("of 500 digits", "9" * 500), ("of 23 digits", "9" * 23))
    },
    "handshake with object id ²": (lambda: (b"verifier=abc&object_id=%C2%B2", None), 400),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_bad_request_is_rejected_and_nothing_stored(served: Served, case: str) -> None:
    make, expected = REJECTED[case]
    body, signature = make()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    status, _ = served.request("POST", WEBHOOK_PATH, body, headers)
    assert status == expected
    assert served.event_rows() == []
    assert hooks.pending_verifiers(served.store) == {}
    assert served.wakes == []
    assert served.healthy()


def test_oversized_body_is_refused_before_it_is_read(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".encode()
        )
        sock.sendall(b"name=bill.create")  # a sliver of the ten megabytes announced
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert served.event_rows() == []
    assert served.healthy()


def test_body_without_length_is_refused(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n0\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 411")
    assert served.event_rows() == []


def test_slow_client_is_cut_off_and_the_server_keeps_serving(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode()
        )
        sock.sendall(b"name=bill")  # then nothing more
        assert sock.recv(4096) == b""  # closed by the server's 0.5 s socket timeout
    assert served.event_rows() == []
    assert served.healthy()


def test_a_client_trickling_its_headers_is_cut_off_at_the_whole_request_deadline(
    served: Served,
) -> None:
    # Each line arrives well within the 0.5 s read timeout; the request as a whole does not.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\n".encode())
        cut = False
        for n in range(30):  # 6 s of trickle, far past the deadline
            time.sleep(0.2)
            try:
                sock.sendall(f"X-Trickle-{n}: 1\r\n".encode())
            except OSError:
                cut = True
                break
        if not cut:
            sock.settimeout(2)
            cut = sock.recv(4096) == b""
        assert cut, "the trickling client was never cut off"
    assert served.healthy()


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", WEBHOOK_PATH, 405),
        ("PUT", WEBHOOK_PATH, 405),
        ("DELETE", WEBHOOK_PATH, 405),
        ("POST", HEALTH_PATH, 405),
        ("POST", "/webhooks/freshbooks/7", 404),
        ("POST", "/", 404),
        ("GET", "/admin", 404),
    ],
)
def test_wrong_method_or_path_is_refused(
    served: Served, method: str, path: str, expected: int
) -> None:
    body = urlencode(EVENT).encode() if method == "POST" else None
    status, _ = served.request(method, path, body, {SIGNATURE_HEADER: sign(EVENT, VERIFIER)})
    assert status == expected
    assert served.event_rows() == []


def test_health_reports_queue_depth_and_last_event(served: Served) -> None:
    assert served.post(EVENT, sign(EVENT, VERIFIER))[0] == 200
    status, document = served.request("GET", HEALTH_PATH)
    assert status == 200
    assert document["status"] == "ok"
    assert document["queued_events"] == 1
    assert isinstance(document["last_event_at"], str)
    assert VERIFIER not in json.dumps(document)


def test_stop_lets_a_request_in_flight_finish(store: Store) -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_wake() -> None:
        entered.set()
        release.wait(5)

    listener = Listener(store, wake=slow_wake, port=0).start()
    port = listener.address[1]
    results: list[int] = []

    def send() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {SIGNATURE_HEADER: sign(EVENT, VERIFIER)}
        try:
            connection.request("POST", WEBHOOK_PATH, urlencode(EVENT).encode(), headers)
            results.append(connection.getresponse().status)
        finally:
            connection.close()

    sender = threading.Thread(target=send)
    sender.start()
    assert entered.wait(5)
    stopper = threading.Thread(target=listener.stop)
    stopper.start()
    release.set()
    sender.join(5)
    stopper.join(5)
    assert results == [200]
    assert [row["name"] for row in store.query("SELECT name FROM events")] == ["bill.create"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


# ---- the worker ---------------------------------------------------------------------------


class Drains:
    """A drain that answers from a script: a number (events left) or an error to raise."""

    def __init__(self, *script: int | Exception) -> None:
        self.script = list(script)
        self.calls: list[float] = []

    def __call__(self) -> int:
        self.calls.append(time.monotonic())
        outcome = self.script.pop(0) if self.script else 0
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_burst_of_wakes_makes_one_run_after_the_quiet_period() -> None:
    drains = Drains()
    worker = Worker(drains, debounce=0.3).start()
    try:
        for _ in range(20):
            worker.wake()
        last_wake = time.monotonic()
        wait_for(lambda: worker.state.runs == 1)
        assert len(drains.calls) == 1
        assert drains.calls[0] - last_wake >= 0.3
    finally:
        assert worker.stop(5)


def test_steady_trickle_cannot_postpone_a_run_past_max_delay() -> None:
    drains = Drains()
    worker = Worker(drains, debounce=0.2, max_delay=0.5).start()
    try:
        started = time.monotonic()
        while not drains.calls and time.monotonic() - started < 5:
            worker.wake()
            time.sleep(0.05)
        assert drains.calls
        assert drains.calls[0] - started < 2
    finally:
        worker.stop(5)


def test_busy_lock_and_failures_are_retried_never_dropped() -> None:
    drains = Drains(LockHeldError("held"), RemoteUnavailableError("down"), 0)
    worker = Worker(drains, debounce=0.0, retry_initial=0.05).start()
    try:
        worker.wake()
        wait_for(lambda: worker.state.runs == 1)
        assert len(drains.calls) == 3
        assert worker.state.busy_retries == 1
        assert worker.state.failures == 1
        assert worker.state.last_outcome == "ok"
    finally:
        worker.stop(5)


def test_unexpected_error_in_a_run_does_not_end_the_worker() -> None:
    drains = Drains(RuntimeError("a bug"), 0)
    worker = Worker(drains, debounce=0.0, retry_initial=0.05).start()
    try:
        worker.wake()
        wait_for(lambda: worker.state.runs == 1)
        assert worker.state.failures == 1
    finally:
        worker.stop(5)


def test_events_left_after_a_run_schedule_another() -> None:
    drains = Drains(3, 0)
    worker = Worker(drains, debounce=0.0, retry_initial=0.05).start()
    try:
        worker.wake()
        wait_for(lambda: worker.state.runs == 2)
    finally:
        worker.stop(5)


def test_stop_waits_for_the_run_in_progress() -> None:
    running = threading.Event()
    finished = threading.Event()

    def slow_drain() -> int:
        running.set()
        time.sleep(0.3)
        finished.set()
        return 0

    worker = Worker(slow_drain, debounce=0.0).start()
    worker.wake()
    assert running.wait(5)
    assert worker.stop(5)
    assert finished.is_set()


def test_stop_while_waiting_runs_nothing_more() -> None:
    drains = Drains()
    worker = Worker(drains, debounce=30.0).start()
    worker.wake()
    assert worker.stop(5)
    assert drains.calls == []


def test_a_state_held_by_another_writer_gets_503_soon_and_health_keeps_answering(
    tmp_path: Path,
) -> None:
    key = StateKey(new_key_hex(), KeySource.FILE)
    store = Store.create(tmp_path / "state.db", key, SystemClock())
    with store.transaction():
        store.put_value("freshbooks.account_id", ACCOUNT)
    hooks.confirm_verifier(store, 7, VERIFIER)
    store.wait_for_writers(1.0)  # as serve-webhook sets it
    listener = Listener(store, wake=lambda: None, port=0).start()
    port = listener.address[1]
    other = Store.open(tmp_path / "state.db", key, SystemClock())  # a cron run's long commit
    answers: list[int] = []

    def post(object_id: int) -> None:
        event = tuple((k, str(object_id) if k == "object_id" else v) for k, v in EVENT)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            SIGNATURE_HEADER: sign(event, VERIFIER),
        }
        # The client gives up after 10 s, as FreshBooks does: a late answer fails here.
        answers.append(
            request_json(port, "POST", WEBHOOK_PATH, urlencode(event).encode(), headers)[0]
        )

    try:
        with other.transaction():
            senders = [threading.Thread(target=post, args=(2000 + n,)) for n in range(3)]
            for sender in senders:
                sender.start()
            status, health = request_json(port, "GET", HEALTH_PATH)
            assert status == 200
            assert health["status"] in ("ok", "busy")
            for sender in senders:
                sender.join(15)
        assert answers == [503, 503, 503]  # FreshBooks retries a 5xx: nothing is lost
        post(2000)
        assert answers[-1] == 200
    finally:
        listener.stop()
        other.close()
        store.close()


def test_two_content_lengths_are_refused(served: Served) -> None:
    # A proxy in front may frame the body by one and this server by the other: smuggling.
    body = urlencode(EVENT).encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(
            f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\nContent-Length: 5\r\n\r\n".encode()
            + body
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400")
    assert served.event_rows() == []
