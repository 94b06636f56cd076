"""serve-webhook as a real process: FreshBooks sandbox callbacks in, files on the SFTP server out.

The sandbox announces every change as a signed webhook (as FreshBooks does),
registers callbacks and performs the verification handshake; the listener
runs as `fbstampli serve-webhook` so signals and the run lock behave as in
production.
"""

import csv
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from fbstampli.clock import SystemClock
from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, sign
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.store import open_state
from tests.e2e.conftest import Connected
from tests.support.cli import cli_env, start
from tests.support.local_http import free_port, request_json, wait_for

DEADLINE = 30.0


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksSandbox]:
    """The sandbox, announcing each change to verified callbacks as a signed webhook."""
    with FreshBooksSandbox(emit_events=True) as sandbox:
        sandbox.seed(vendors=3, bills=6, payments=2, seed=7)
        yield sandbox


@dataclass
class Serving:
    connected: Connected
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/freshbooks"

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, object]]:
        return request_json(self.port, method, path, body, headers)

    def health(self) -> dict[str, object]:
        status, document = self.request("GET", "/healthz")
        assert status == 200
        return document

    def worker(self) -> dict[str, int | str | bool]:
        return self.health()["worker"]  # type: ignore[return-value]

    def post(self, pairs: tuple[tuple[str, str], ...], signature: str | None) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return self.request("POST", "/webhooks/freshbooks", urlencode(pairs).encode(), headers)[0]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=DEADLINE)


def start_listener(connected: Connected, tmp_path: Path, port: int | None = None) -> Serving:
    port = port or free_port()
    log = tmp_path / "serve-webhook.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "fbstampli", "serve-webhook", "--port", str(port)],
            env=cli_env(connected.home),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    serving = Serving(connected, process, port, log)

    def answering() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return serving.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    wait_for(answering)
    return serving


@pytest.fixture
def serving(connected: Connected, tmp_path: Path) -> Iterator[Serving]:
    """A pushed-once home with serve-webhook running and both callbacks registered."""
    with (connected.home / "config.toml").open("a") as config:
        config.write("[webhook]\ndebounce_seconds = 0.2\n")
    assert connected.run("push-bills").code == 0
    serving = start_listener(connected, tmp_path)
    try:
        result = connected.run("webhooks", "register", "--url", serving.url)
        assert result.code == 0, result.output
        yield serving
    finally:
        if serving.process.poll() is None:
            serving.stop()


def verifier_of(fb: FreshBooksSandbox, event: str) -> str:
    return next(c.verifier for c in fb.callbacks[fb.account_id].values() if c.event == event)


def event_form(fb: FreshBooksSandbox, name: str, object_id: int) -> tuple[tuple[str, str], ...]:
    return (
        ("name", name),
        ("object_id", str(object_id)),
        ("account_id", fb.account_id),
        ("business_id", str(fb.businesses[0].business_id)),
        ("identity_id", "1"),
        ("user_id", "1"),
    )


def stored(home: Path, sql: str) -> list[tuple[Any, ...]]:
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        return [tuple(row) for row in store.query(sql)]
    finally:
        store.close()


def delivered_bill_ids(connected: Connected) -> list[str]:
    """Every bill row on the SFTP server, repeats included."""
    ids: list[str] = []
    for name in connected.inbound_files():
        if name.endswith("-bills.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            ids.extend(row["FreshBooks Bill ID"] for row in csv.DictReader(io.StringIO(text)))
    return ids


def new_bill_quietly(fb: FreshBooksSandbox, vendor_id: int, number: str) -> int:
    """A bill FreshBooks has, but has not announced (the test sends the webhook itself)."""
    announce, fb.data.on_change = fb.data.on_change, None
    try:
        return fb.create_bill(vendor_id, bill_number=number)
    finally:
        fb.data.on_change = announce


def a_vendor(fb: FreshBooksSandbox) -> int:
    return min(i for i, v in fb.data.vendors.items() if v.get("vis_state", 0) == 0)


# ---- the handshake ----------------------------------------------------------------------------


def test_register_completes_the_handshake_and_keeps_the_verifier_encrypted(
    serving: Serving,
) -> None:
    fb = serving.connected.freshbooks
    callbacks = fb.callbacks[fb.account_id]
    assert sorted(c.event for c in callbacks.values()) == ["bill", "bill_vendor"]
    assert all(c.verified for c in callbacks.values())
    assert fb.count("PUT", "callbacks.put") >= 2
    secrets = dict(stored(serving.connected.home, "SELECT name, value FROM credentials"))
    for record in callbacks.values():
        assert secrets[f"webhook.verifier.{record.callback_id}"] == record.verifier
    assert not any(str(name).startswith("webhook.pending.") for name in secrets)
    raw = (serving.connected.home / "state.db").read_bytes()
    assert all(record.verifier.encode() not in raw for record in callbacks.values())
    listed = serving.connected.run("webhooks", "list", "--json")
    assert listed.code == 0
    assert all(row["verified"] and row["verifier_stored"] for row in json.loads(listed.stdout))
    assert serving.stop() == 0
    logs = serving.log.read_text() + "".join(
        path.read_text() for path in (serving.connected.home / "logs").glob("*")
    )
    assert all(record.verifier not in logs for record in callbacks.values())


def test_verify_resend_recovers_a_handshake_the_listener_missed(
    connected: Connected, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/freshbooks"
    missed = connected.run("webhooks", "register", "--url", url)
    assert missed.code == 1  # registered, but nobody answered the handshake
    assert "--resend" in missed.stdout + missed.stderr
    fb = connected.freshbooks
    serving = start_listener(connected, tmp_path, port)
    try:
        for record in list(fb.callbacks[fb.account_id].values()):
            result = connected.run("webhooks", "verify", str(record.callback_id), "--resend")
            assert result.code == 0, result.output
        assert all(c.verified for c in fb.callbacks[fb.account_id].values())
    finally:
        serving.stop()


def test_delete_removes_the_callback_and_forgets_its_verifier(serving: Serving) -> None:
    fb = serving.connected.freshbooks
    callback_id = min(fb.callbacks[fb.account_id])
    assert serving.connected.run("webhooks", "delete", str(callback_id)).code == 0
    assert callback_id not in fb.callbacks[fb.account_id]
    names = [row[0] for row in stored(serving.connected.home, "SELECT name FROM credentials")]
    assert f"webhook.verifier.{callback_id}" not in names


# ---- events to files --------------------------------------------------------------------------


def test_new_bill_reaches_the_sftp_inbound_folder_within_seconds(serving: Serving) -> None:
    connected = serving.connected
    fb = connected.freshbooks
    bill_id = fb.create_bill(a_vendor(fb), bill_number="HOOK-1")  # the sandbox sends bill.create
    assert [d.status for d in fb.deliveries if d.form[0] == ("name", "bill.create")] == [200]
    wait_for(lambda: str(bill_id) in delivered_bill_ids(connected))
    assert delivered_bill_ids(connected).count(str(bill_id)) == 1
    wait_for(lambda: serving.health()["queued_events"] == 0)


def test_replayed_event_adds_nothing(serving: Serving) -> None:
    connected = serving.connected
    fb = connected.freshbooks
    bill_id = fb.create_bill(a_vendor(fb), bill_number="HOOK-2")
    wait_for(lambda: str(bill_id) in delivered_bill_ids(connected))
    wait_for(lambda: serving.health()["queued_events"] == 0)
    files = connected.inbound_files()
    runs = int(serving.worker()["runs"])
    fb.send_event("bill.create", bill_id)
    fb.send_event("bill.create", bill_id)
    wait_for(
        lambda: int(serving.worker()["runs"]) > runs and serving.health()["queued_events"] == 0
    )
    assert connected.inbound_files() == files


def test_hostile_requests_are_rejected_store_nothing_and_the_server_keeps_serving(
    serving: Serving,
) -> None:
    fb = serving.connected.freshbooks
    verifier = verifier_of(fb, "bill")
    form = event_form(fb, "bill.create", 999)
    body = urlencode(form).encode()
    good = sign(form, verifier)
    tampered = urlencode(event_form(fb, "bill.create", 998)).encode()
    reordered = urlencode(tuple(reversed(form))).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = {
        "no signature": (body, None, 401),
        "bad signature": (body, "AAAA", 401),
        "wrong key": (body, sign(form, "not-the-verifier"), 401),
        "tampered field": (tampered, good, 401),
        "reordered fields": (reordered, good, 401),
        "garbage": (b"\x00\x01 definitely not a form", good, 400),
        "not UTF-8": (b"name=bill.create&object_id=\xff", good, 400),
        "oversized": (b"name=" + b"x" * 70000, good, 413),
    }
    before = stored(serving.connected.home, "SELECT count(*) FROM events")
    for case, (payload, signature, expected) in cases.items():
        sent = dict(headers)
        if signature is not None:
            sent[SIGNATURE_HEADER] = signature
        try:
            status = serving.request("POST", "/webhooks/freshbooks", payload, sent)[0]
        except ConnectionResetError:  # the 413 may close before the whole body is written
            status = 413
        assert status == expected, case
        assert serving.health()["status"] == "ok", case
    assert stored(serving.connected.home, "SELECT count(*) FROM events") == before
    assert serving.post(form, good) == 200  # and a genuine one still gets in


def test_fifty_concurrent_events_are_all_queued_and_each_bill_delivered_once(
    serving: Serving,
) -> None:
    connected = serving.connected
    fb = connected.freshbooks
    vendor = a_vendor(fb)
    bill_ids = [new_bill_quietly(fb, vendor, f"BURST-{n}") for n in range(50)]
    verifier = verifier_of(fb, "bill")
    forms = [event_form(fb, "bill.create", bill_id) for bill_id in bill_ids]
    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(lambda form: serving.post(form, sign(form, verifier)), forms))
    assert statuses == [200] * 50
    queued = stored(connected.home, "SELECT object_id FROM events WHERE name = 'bill.create'")
    assert set(bill_ids) <= {row[0] for row in queued}
    wanted = {str(bill_id) for bill_id in bill_ids}
    wait_for(lambda: wanted <= set(delivered_bill_ids(connected)))
    delivered = delivered_bill_ids(connected)
    assert all(delivered.count(bill_id) == 1 for bill_id in wanted)


@pytest.fixture
def lock_holder(connected: Connected) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the run lock (as a long cron run would) until its stdin closes."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fbstampli.lock import run_lock\n"
        "with run_lock(Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(connected.home / "run.lock")],
        env=cli_env(connected.home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    yield holder
    if holder.poll() is None:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=DEADLINE)
    holder.stdout.close()


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=DEADLINE)


def test_events_wait_while_another_run_holds_the_lock_then_are_delivered(
    serving: Serving, lock_holder: subprocess.Popen[str]
) -> None:
    connected = serving.connected
    fb = connected.freshbooks
    bill_id = new_bill_quietly(fb, a_vendor(fb), "LOCKED-1")
    form = event_form(fb, "bill.create", bill_id)
    asked = time.monotonic()
    assert serving.post(form, sign(form, verifier_of(fb, "bill"))) == 200
    assert time.monotonic() - asked < 5  # answered while the lock is held, well inside 10 s
    busy = int(serving.worker()["busy_retries"])
    wait_for(lambda: int(serving.worker()["busy_retries"]) > busy)
    assert serving.health()["queued_events"] == 1
    assert str(bill_id) not in delivered_bill_ids(connected)
    release(lock_holder)
    wait_for(lambda: str(bill_id) in delivered_bill_ids(connected))
    assert delivered_bill_ids(connected).count(str(bill_id)) == 1


def test_sigterm_with_queued_events_exits_0_and_loses_none(
    serving: Serving, lock_holder: subprocess.Popen[str]
) -> None:
    connected = serving.connected
    fb = connected.freshbooks
    vendor = a_vendor(fb)
    bill_ids = [new_bill_quietly(fb, vendor, f"TERM-{n}") for n in range(3)]
    verifier = verifier_of(fb, "bill")
    for bill_id in bill_ids:
        form = event_form(fb, "bill.create", bill_id)
        assert serving.post(form, sign(form, verifier)) == 200
    busy = int(serving.worker()["busy_retries"])
    wait_for(lambda: int(serving.worker()["busy_retries"]) > busy)
    assert serving.stop() == 0
    waiting = stored(
        connected.home,
        "SELECT object_id FROM events WHERE processed_at IS NULL AND name = 'bill.create'",
    )
    assert sorted(row[0] for row in waiting) == sorted(bill_ids)
    release(lock_holder)
    assert connected.run("push-bills").code == 0  # cron's next run drains them
    delivered = delivered_bill_ids(connected)
    assert all(delivered.count(str(bill_id)) == 1 for bill_id in bill_ids)
    left = stored(connected.home, "SELECT count(*) FROM events WHERE processed_at IS NULL")
    assert left == [(0,)]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN on `port`, read from /proc/net/tcp{,6}."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as rows:
            next(rows)
            for row in rows:
                local, state = row.split()[1], row.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_listener_binds_to_loopback_unless_told_otherwise(
    connected: Connected, tmp_path: Path
) -> None:
    serving = start_listener(connected, tmp_path)  # no --host, as in the README
    try:
        # 127.0.0.1 in /proc's little-endian hex; nothing on 0.0.0.0 or an IPv6 wildcard.
        assert listening_addresses(serving.port) == {"0100007F"}
    finally:
        assert serving.stop() == 0


def test_restore_and_key_rotation_refuse_while_the_listener_serves_and_a_second_listener_too(
    serving: Serving, tmp_path: Path
) -> None:
    # The listener keeps the state open; a file swapped under it would swallow events.
    connected = serving.connected
    backup = tmp_path / "backup.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    for args in (("state", "restore", str(backup), "--force"), ("key", "rotate")):
        refused = connected.run(*args)
        assert refused.code == 75, refused.stderr
        assert f"serve-webhook (pid {serving.process.pid}) is using" in refused.stderr
        assert "stop it" in refused.stderr
    second = connected.run("serve-webhook", "--port", str(free_port()))
    assert second.code == 75
    assert "serve-webhook cannot run at the same time" in second.stderr
    assert serving.stop() == 0
    assert connected.run("state", "restore", str(backup), "--force").code == 0


# ---- forged handshakes ------------------------------------------------------------------------


def test_flood_of_unsigned_handshakes_neither_blocks_syncs_nor_a_genuine_handshake(
    serving: Serving,
) -> None:
    # Once: 16 forged handshakes every 0.5 s made every cron sync exit 75 (the worker held the
    # run lock PUTting them to FreshBooks), and the 17th pending one made a genuine one 503.
    connected = serving.connected
    fb = connected.freshbooks
    puts = fb.count("PUT", "callbacks.put")
    fb.delay("/events/account/", 0.3, times=10_000)  # FreshBooks answers in a few hundred ms
    stop = threading.Event()
    flood_statuses: list[int] = []

    def flood() -> None:
        n = 0
        while not stop.is_set():
            for _ in range(16):
                n += 1
                form = (("verifier", f"forged-{n}"), ("object_id", str(900000 + n)))
                flood_statuses.append(serving.post(form, None))
            stop.wait(0.5)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        wait_for(lambda: len(flood_statuses) >= 32)
        codes = [connected.run("sync").code for _ in range(4)]
        assert codes == [0, 0, 0, 0]
        record = min(fb.callbacks[fb.account_id].values(), key=lambda c: c.callback_id)
        record.verifier, record.verified = "a-fresh-genuine-code", False
        resent = connected.run("webhooks", "verify", str(record.callback_id), "--resend")
        assert resent.code == 0, resent.output
        assert record.verified
    finally:
        stop.set()
        flooder.join(DEADLINE)
    assert set(flood_statuses) == {202}
    assert serving.health()["handshakes_ignored"] == len(flood_statuses)
    assert serving.worker()["runs"] == 0
    assert serving.worker()["busy_retries"] == 0
    assert fb.count("PUT", "callbacks.put") == puts + 2  # the resend and its confirmation only
    names = [row[0] for row in stored(connected.home, "SELECT name FROM credentials")]
    assert not any(str(name).startswith("webhook.pending.") for name in names)


# ---- the handshake window under attack (issue #25, finding 5) ---------------------------------


def forged_handshake(serving: Serving, n: int) -> int:
    return serving.post((("verifier", f"forged-{n}"), ("object_id", str(900000 + n))), None)


def test_register_verifies_although_forged_handshakes_fill_its_any_id_phase(
    connected: Connected, tmp_path: Path
) -> None:
    # Once: 6 flooding threads took the 16 places of the any-id phase before FreshBooks'
    # handshake arrived, and register ended unverified (exit 1) in 4 trials of 4.
    serving = start_listener(connected, tmp_path)
    fb = connected.freshbooks
    held = fb.hold("/events/account/", method="POST")  # the first registration, mid-flight
    stop = threading.Event()
    counter = iter(range(10**9))

    def flood() -> None:
        while not stop.is_set():
            forged_handshake(serving, next(counter))

    register = start(connected.home, "webhooks", "register", "--url", serving.url)
    flooders = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
    try:
        assert held.arrived.wait(DEADLINE)  # register has opened the window of any id
        for flooder in flooders:
            flooder.start()
        wait_for(lambda: int(str(serving.health()["handshakes"])) >= 16)  # every place taken
        held.release()
        out, err = register.communicate(timeout=DEADLINE)
    finally:
        held.release()
        stop.set()
        for flooder in flooders:
            flooder.join(DEADLINE)
        if register.poll() is None:
            register.kill()
            register.wait()
        serving.stop()
    assert register.returncode == 0, out + err
    assert all(c.verified for c in fb.callbacks[fb.account_id].values())


def test_the_any_id_window_closes_when_register_is_killed(
    connected: Connected, tmp_path: Path
) -> None:
    # Once: after a killed register, handshakes of any id were kept for up to 120 s.
    serving = start_listener(connected, tmp_path)
    fb = connected.freshbooks
    held = fb.hold("/events/account/", method="POST")
    register = start(connected.home, "webhooks", "register", "--url", serving.url)
    try:
        assert held.arrived.wait(DEADLINE)
        assert forged_handshake(serving, 1) == 200  # the window is open while register waits
        register.kill()
        register.wait(DEADLINE)
        assert forged_handshake(serving, 2) == 202  # and closed once it is gone
    finally:
        held.release()
        if register.poll() is None:
            register.kill()
            register.wait()
        if register.stdout is not None:
            register.stdout.close()
        if register.stderr is not None:
            register.stderr.close()
        serving.stop()


def test_a_forged_code_arriving_after_the_genuine_one_does_not_replace_it(
    serving: Serving,
) -> None:
    # Once: a later forged handshake overwrote the pending genuine code.
    from fbstampli.store import events as hooks

    connected = serving.connected
    fb = connected.freshbooks
    record = min(fb.callbacks[fb.account_id].values(), key=lambda c: c.callback_id)
    record.verifier, record.verified = "a-fresh-genuine-code", False
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        hooks.open_handshake_window(store, 600, {record.callback_id})
        genuine = (("verifier", record.verifier), ("object_id", str(record.callback_id)))
        forged = (("verifier", "forged-later"), ("object_id", str(record.callback_id)))
        assert serving.post(genuine, None) == 200
        assert serving.post(forged, None) == 200
        result = connected.run("webhooks", "verify", str(record.callback_id))
    finally:
        store.close()
    assert result.code == 0, result.output
    assert record.verified
