"""doctor's state-integrity and clock checks, each failing for its own reason, through the CLI.

The state is damaged the way disks damage it: bytes flipped inside one page of
the real SQLCipher file. The clock is judged against FreshBooks' `Date`
header; a small proxy in front of the sandbox shifts that header, which is
exactly what a wrong local clock looks like from the outside.
"""

import http.client
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import pytest

from fbstampli.clock import SystemClock
from fbstampli.options import Options
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.doctor import CheckResult, run_checks
from fbstampli.services.sandbox import connect_home
from fbstampli.store import open_state
from tests.e2e.conftest import Connected
from tests.support.cli import one_line, start

PAGE_SIZE = 4096  # SQLCipher 4's default, which `init` keeps
FIX_RESTORE = "restore the last good backup with `fbstampli state restore FILE`"


@pytest.fixture
def connected(tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer) -> Connected:
    """conftest's connected home, but connected in-process, as the demo does it.

    Set-up is not under test here; three fewer CLI start-ups per test keep the suite fast.
    """
    home = tmp_path / "home"
    connect_home(Options(home=home, env={}), freshbooks, sftp_server)
    return Connected(home, freshbooks, sftp_server)


def doctor_lines(connected: Connected, env: dict[str, str] | None = None) -> dict[str, str]:
    """doctor's text output as {check name: its whole line}, made comparable between runs."""
    result = connected.run("doctor", env=env)
    lines: dict[str, str] = {}
    for line in result.stdout.splitlines():
        name = line[5:].split(":", 1)[0]
        # The probe file's random name and the clock's reading differ on every run.
        line = re.sub(r"fbstampli-probe-[0-9a-f]+", "fbstampli-probe-…", line)
        lines[name] = line
    assert result.code == (0 if all(v.startswith("ok") for v in lines.values()) else 1)
    return lines


def damage_page_of(home: Path, table: str) -> int:
    """Flip bytes inside the root page of `table`; return the page number.

    The WAL is folded into the main file first, so the damaged page is the one
    every reader gets. Page 1 (the schema) is never chosen, so the file still opens.
    """
    store, _ = open_state(home / "state.db", {}, SystemClock(), recover=False)
    try:
        row = store.query_one("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        assert row is not None
        page = int(row["rootpage"])
        store.checkpoint()
    finally:
        store.close()
    assert page > 1
    offset = (page - 1) * PAGE_SIZE + 512  # inside the encrypted payload, not the IV or HMAC
    with (home / "state.db").open("r+b") as file:
        file.seek(offset)
        original = file.read(16)
        file.seek(offset)
        file.write(bytes(byte ^ 0xFF for byte in original))
    return page


def test_a_damaged_page_fails_doctor_with_the_restore_fix_and_makes_a_run_exit_4(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0  # the audit trail now spans real pages
    healthy = doctor_lines(connected)
    assert healthy["state integrity"] == "ok   state integrity: cipher and page checks ok"

    page = damage_page_of(connected.home, "audit")
    damaged = doctor_lines(connected)

    line = damaged.pop("state integrity")
    assert line.startswith("FAIL state integrity: ")
    assert f"cipher_integrity_check: HMAC verification failed for page {page}" in line
    assert line.endswith(f" -> {FIX_RESTORE}")
    healthy.pop("state integrity")
    clock_then, clock_now = healthy.pop("clock"), damaged.pop("clock")
    assert damaged == healthy
    assert clock_then.startswith("ok   clock:")
    assert clock_now.startswith("ok   clock:")

    # A run that needs the damaged page stops with exit 4 and doctor's name, not a crash.
    bill_id = sorted(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number=f"B-{bill_id}-REVISED")
    result = connected.run("push-bills")
    assert result.code == 4, result.stderr
    assert one_line(result.stderr)
    assert "is damaged" in result.stderr
    assert "fbstampli doctor" in result.stderr


class DateShiftingProxy:
    """Forwards every request to the sandbox, answering with a `Date` `shift` away from now."""

    def __init__(self, upstream: str, shift: timedelta) -> None:
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            hop_by_hop: ClassVar[set[str]] = {
                "connection",
                "content-length",
                "date",
                "server",
                "transfer-encoding",
            }

            def date_time_string(self, timestamp: float | None = None) -> str:
                return formatdate(time.time() + proxy.shift.total_seconds(), usegmt=True)

            def forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection(target.netloc, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in self.hop_by_hop:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        self.shift = shift
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "DateShiftingProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def shifted_freshbooks(connected: Connected) -> Iterator[DateShiftingProxy]:
    """FreshBooks as seen through a proxy whose clock runs 10 minutes ahead of ours."""
    with DateShiftingProxy(connected.freshbooks.url, timedelta(minutes=10)) as proxy:
        yield proxy


def test_doctor_fails_the_clock_when_it_is_ten_minutes_behind_freshbooks(
    connected: Connected, shifted_freshbooks: DateShiftingProxy
) -> None:
    in_step = doctor_lines(connected)
    assert re.fullmatch(
        r"ok   clock: the clock says \S+ \S+ \S+, (in step with|\d+ s \w+).*", in_step["clock"]
    )

    skewed = doctor_lines(connected, env={"FBSTAMPLI_FRESHBOOKS_API_URL": shifted_freshbooks.url})

    line = skewed.pop("clock")
    assert re.fullmatch(
        r"FAIL clock: the clock says \S+ \S+ \S+, (9 min 5\d s|10 min( \d s)?) behind FreshBooks "
        r"\(\S+ \S+ \S+\): token expiry and webhook times depend on it "
        r"-> set the system clock and keep it synchronised \(NTP, .*\)",
        line,
    ), line
    in_step.pop("clock")
    assert skewed == in_step  # FreshBooks itself still answered through the proxy


@pytest.fixture
def options(tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer) -> Options:
    """A home connected in-process (as the demo does): run_checks is called directly."""
    home_options = Options(home=tmp_path / "home", env={"FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "0"})
    connect_home(home_options, freshbooks, sftp_server)
    return home_options


def checks_at(options: Options, moment: Callable[[], datetime] | None) -> dict[str, CheckResult]:
    return {check.name: check for check in run_checks(options, now=moment)}


def test_doctor_compares_the_injected_local_time_with_the_sandboxs_real_date_header(
    options: Options,
) -> None:
    fast = checks_at(options, lambda: datetime.now(UTC) + timedelta(minutes=7))
    assert fast["FreshBooks"].ok
    assert not fast["clock"].ok
    assert "ahead of FreshBooks" in fast["clock"].detail
    assert "NTP" in fast["clock"].fix

    tolerable = checks_at(options, lambda: datetime.now(UTC) + timedelta(minutes=4))
    assert tolerable["clock"].ok, tolerable["clock"].detail
    assert "ahead of FreshBooks" in tolerable["clock"].detail


def test_without_freshbooks_a_clock_earlier_than_the_last_run_fails(
    options: Options, freshbooks: FreshBooksSandbox
) -> None:
    from fbstampli.services import sync as push

    assert not push.push_bills(options, dry_run=False, full=False, since=None).problems
    freshbooks.stop()

    earlier = checks_at(options, lambda: datetime.now(UTC) - timedelta(hours=2))
    assert not earlier["FreshBooks"].ok
    assert not earlier["clock"].ok
    assert "before the last recorded run" in earlier["clock"].detail
    assert "went backwards" in earlier["clock"].detail

    now = checks_at(options, None)
    assert now["clock"].ok
    assert "not compared with FreshBooks" in now["clock"].detail


def test_an_unreachable_freshbooks_gets_the_network_fix_not_a_new_login(
    options: Options, freshbooks: FreshBooksSandbox
) -> None:
    freshbooks.stop()

    check = checks_at(options, None)["FreshBooks"]

    assert not check.ok
    assert "did not answer" in check.detail
    assert "freshbooks.api_url" in check.fix
    assert "auth login" not in check.fix


def test_doctor_during_a_sync_never_spends_the_refresh_token_the_sync_holds(
    connected: Connected,
) -> None:
    # Once: doctor refreshed the single-use refresh token without the run lock, and the sync
    # it ran beside then failed with "FreshBooks rejected the refresh token".
    fb = connected.freshbooks
    # The sync's first file only: doctor's own inbound probe (`.fbstampli-probe-….part`) must
    # not be held too, or doctor waits out the SFTP timeout (once a minute of this test).
    with connected.sftp.hold("*-vendors.csv.part") as hold:
        sync = start(connected.home, "sync")
        try:
            assert hold.reached.wait(60), "sync never reached the upload"
            fb.expire_access_tokens()  # whoever calls FreshBooks next must refresh
            tokens_before = fb.count("POST", "token")
            doctor = connected.run("doctor")
            assert fb.count("POST", "token") == tokens_before  # doctor did not refresh
            line = next(x for x in doctor.stdout.splitlines() if "FreshBooks" in x)
            assert "run lock" in line, doctor.stdout
        finally:
            hold.release()
            _, err = sync.communicate(timeout=120)
    assert sync.returncode == 0, err
    assert connected.run("doctor").code == 0  # and alone it checks the token for real
