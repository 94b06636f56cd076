"""Requests that carry secrets go to the configured host only, whatever answers or is written.

A redirecting server and a recording one run on 127.0.0.1; the real CLI is
pointed at them through the environment, as a tampered config would.
"""

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from fbstampli.clock import SystemClock
from fbstampli.services.sandbox import REDIRECT_URI
from fbstampli.store import open_state
from fbstampli.store.credentials import StateTokenStore
from tests.e2e.conftest import Connected


class Recorder(BaseHTTPRequestHandler):
    """Whatever reaches it is a leak: it records the request line, headers and body."""

    seen: ClassVar[list[str]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.seen.append(f"{self.command} {self.path}\n{self.headers}\n{body}")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = _record

    def log_message(self, *args: object) -> None:
        pass


class Redirector(BaseHTTPRequestHandler):
    target: ClassVar[str] = ""

    def _redirect(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = _redirect

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def recorder() -> Iterator[int]:
    Recorder.seen = []
    yield from serve(Recorder)


@pytest.fixture
def redirector(recorder: int) -> Iterator[str]:
    Redirector.target = f"http://127.0.0.1:{recorder}"
    for port in serve(Redirector):
        yield f"http://127.0.0.1:{port}"


def test_an_api_redirect_is_not_followed_with_the_token(
    connected: Connected, redirector: str
) -> None:
    result = connected.run("push-bills", env={"FBSTAMPLI_FRESHBOOKS_API_URL": redirector})
    assert result.code != 0
    assert "redirect" in result.stderr
    assert Recorder.seen == []


def test_a_token_endpoint_redirect_is_not_followed_with_the_secrets(
    connected: Connected, redirector: str
) -> None:
    # Once: a 307 sent the client secret and the refresh token to another port over http.
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        tokens = StateTokenStore(store)
        token = tokens.load()
        assert token is not None
        tokens.save(replace(token, expires_at=datetime.now(UTC) - timedelta(hours=1)))
    finally:
        store.close()
    result = connected.run("push-bills", env={"FBSTAMPLI_FRESHBOOKS_API_URL": redirector})
    assert result.code != 0
    assert "redirect" in result.stderr
    assert Recorder.seen == []


def test_a_url_two_parsers_read_differently_is_refused(connected: Connected, recorder: int) -> None:
    # urllib.parse saw 127.0.0.1 (http allowed); requests connected to 127.1:<recorder>.
    for url in (f"http://127.1:{recorder}\\@127.0.0.1", f"http://user@127.0.0.1:{recorder}"):
        result = connected.run("push-bills", env={"FBSTAMPLI_FRESHBOOKS_API_URL": url})
        assert result.code == 2, result.output
        assert "freshbooks.api_url" in result.stderr
    assert Recorder.seen == []


@pytest.mark.parametrize("uri", ["http://127.evil.com/callback", "http://127.0.0.1.evil.com/cb"])
def test_a_redirect_uri_merely_starting_like_loopback_is_refused(
    connected: Connected, uri: str
) -> None:
    result = connected.run("status", env={"FBSTAMPLI_FRESHBOOKS_REDIRECT_URI": uri})
    assert result.code == 2, result.output
    assert "freshbooks.redirect_uri" in result.stderr


def test_a_loopback_http_redirect_uri_is_still_accepted(connected: Connected) -> None:
    uri = "http://127.0.0.1:8765/callback"
    assert connected.run("status", env={"FBSTAMPLI_FRESHBOOKS_REDIRECT_URI": uri}).code == 0


# ---- secrets given to the program, and the browser it starts ----------------------------------


def test_a_login_code_can_come_from_stdin_and_help_says_so(connected: Connected) -> None:
    code = connected.freshbooks.issue_code(REDIRECT_URI)
    login = connected.run("auth", "login", "--code", "-", stdin=code + "\n")
    assert login.code == 0, login.output
    helped = connected.run("auth", "login", "--help")
    assert "stdin" in " ".join(helped.stdout.split())
    verify_help = connected.run("webhooks", "verify", "--help")
    assert "stdin" in " ".join(verify_help.stdout.split())


def test_a_webhook_verifier_can_come_from_stdin(connected: Connected) -> None:
    fb = connected.freshbooks
    record = fb.new_callback(fb.account_id, "bill", "https://example.invalid/hook", "sekrit-code")
    result = connected.run(
        "webhooks", "verify", str(record.callback_id), "--verifier", "-", stdin="sekrit-code\n"
    )
    assert result.code == 0, result.output
    assert record.verified


def test_the_browser_is_started_without_the_state_key_or_the_client_secret(
    connected: Connected, tmp_path: Path
) -> None:
    import os
    import pty
    import subprocess
    import sys
    import time

    from tests.support.cli import cli_env

    seen = tmp_path / "browser-env"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opener = bin_dir / "xdg-open"
    opener.write_text(f"#!/bin/sh\nenv > {seen}\n")
    opener.chmod(0o700)
    key = "ab" * 32
    env = cli_env(
        connected.home,
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FBSTAMPLI_FRESHBOOKS_CLIENT_SECRET": "the-client-secret",
            "FRESHBOOKS_CLIENT_SECRET": "the-client-secret",
            "FBSTAMPLI_TEST_KEY_BACKUP": key,  # (an unknown FBSTAMPLI_ name is refused)
            "VAULT_TOKEN": key,
        },
    )
    controller, terminal = pty.openpty()  # auth login asks for the URL only on a terminal
    process = subprocess.Popen(
        [sys.executable, "-m", "fbstampli", "auth", "login"],
        env=env,
        stdin=terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not seen.exists() or not seen.read_text().endswith("\n"):
            assert time.monotonic() < deadline, "the browser was never started"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
        os.close(terminal)
        os.close(controller)
    opened_with = seen.read_text()
    assert "PATH=" in opened_with  # what a browser needs is there ...
    assert "the-client-secret" not in opened_with  # ... no secret is
    assert key not in opened_with
    assert "FBSTAMPLI_" not in opened_with
