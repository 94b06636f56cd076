"""Monitoring pings against a real local HTTP server; a ping never fails the job."""

import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from fbstampli.errors import RemoteUnavailableError
from fbstampli.monitoring import monitored
from fbstampli.report import RunReport


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Recorder.seen.append((self.path, self.rfile.read(length).decode()))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pings() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc", Recorder.seen
    server.shutdown()
    server.server_close()


def test_success_pings_start_then_the_url(pings) -> None:
    url, seen = pings
    monitored(url, lambda: RunReport("sync"))
    assert [path for path, _ in seen] == ["/ping/abc/start", "/ping/abc"]


def test_problems_ping_fail_with_the_reason(pings) -> None:
    url, seen = pings
    report = RunReport("sync", problems=["upload of x.csv failed: disk full"])
    monitored(url, lambda: report)
    assert seen[-1] == ("/ping/abc/fail", "upload of x.csv failed: disk full")


def test_an_error_pings_fail_and_still_raises(pings) -> None:
    url, seen = pings

    def broken() -> RunReport:
        raise RemoteUnavailableError("sftp.example is unreachable")

    with pytest.raises(RemoteUnavailableError):
        monitored(url, broken)
    assert seen[-1] == ("/ping/abc/fail", "sftp.example is unreachable")


def test_a_dead_monitoring_service_does_not_fail_the_job() -> None:
    report = monitored("http://127.0.0.1:9/nothing-listens", lambda: RunReport("sync"))
    assert report.exit_code == 0


def test_a_failed_ping_logs_the_host_never_the_key_in_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the ping fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ping/0b7a6c1e-secret-check-key"
    with caplog.at_level(logging.WARNING):
        monitored(url, lambda: RunReport("sync"))
    assert caplog.records, "the failed ping was not logged"
    assert all("secret-check-key" not in record.getMessage() for record in caplog.records)
    assert "http://127.0.0.1/" in caplog.records[0].getMessage()
