"""`sync`'s stages stand alone: FreshBooks down still uploads what is queued, pulls and
reconciles; SFTP down still reads FreshBooks and queues. Under -q a transient outage is
silent until it has lasted `monitoring.quiet_transient_hours`, then one line says since when."""

import json
from pathlib import Path

from fbstampli.sandbox.sftp_server import SftpServer
from tests.e2e.conftest import Connected

FRESHBOOKS_DOWN = {
    "FBSTAMPLI_FRESHBOOKS_API_URL": "http://127.0.0.1:9",  # discard port: refused
    "FBSTAMPLI_FRESHBOOKS_MAX_RETRIES": "0",
}


def waiting(connected: Connected) -> int:
    status = json.loads(connected.run("status", "--json").stdout)
    return sum(1 for _ in status["deliveries"]["failing"])


def test_sftp_down_still_reads_freshbooks_and_freshbooks_down_still_uploads(
    connected: Connected, sftp_root: Path
) -> None:
    port, pkey, password = connected.sftp.port, connected.sftp.host_pkey, connected.sftp.password
    connected.sftp.stop()
    down = connected.run("-q", "sync")
    assert down.code == 75
    assert down.stderr == ""  # transient and young: only the log has it
    assert waiting(connected) > 0  # FreshBooks was read, its objects queued
    assert list((sftp_root / "inbound").iterdir()) == []
    assert connected.run("retry", "--failed", "--queue-only").code == 0

    with SftpServer(sftp_root, port=port, host_pkey=pkey, password=password) as back:
        connected.sftp = back
        result = connected.run("-v", "sync", env=FRESHBOOKS_DOWN)
        assert result.code == 75, result.stderr
        assert len(connected.inbound_files()) == 5  # the queue went out, the coding lists first
        assert "FreshBooks: stopped" in result.stdout
        assert "Uploads to Stampli: done." in result.stdout
        assert "Stampli's exports: done." in result.stdout
        assert "Reconcile: compared against FreshBooks as read at" in result.stdout
        runs = json.loads(connected.run("status", "--json").stdout)["runs"]
        assert runs["pull-stampli"]["exit_code"] == 0
        assert runs["reconcile"]["exit_code"] == 0
        assert runs["push-bills"]["exit_code"] == 75


def test_a_transient_outage_is_silent_under_q_until_it_lasted_then_one_line_says_since_when(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    first = connected.run("-q", "sync", env=FRESHBOOKS_DOWN)
    assert first.code == 75
    assert first.stderr == ""
    log = (connected.home / "logs" / "fbstampli.log").read_text()
    assert "FreshBooks" in log.splitlines()[-1] or "not reachable" in log
    lasted = connected.run(
        "-q", "sync", env={**FRESHBOOKS_DOWN, "FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": "0"}
    )
    assert lasted.code == 75
    lines = lasted.stderr.splitlines()
    assert len(lines) == 1, lasted.stderr
    assert "failing since" in lines[0]
    assert "runs keep trying" in lines[0]
    assert connected.run("-q", "sync").code == 0  # back: the clock of the outage stops
    again = connected.run(
        "-q", "sync", env={**FRESHBOOKS_DOWN, "FBSTAMPLI_MONITORING_QUIET_TRANSIENT_HOURS": "0.5"}
    )
    assert again.stderr == ""
