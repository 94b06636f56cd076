"""status, doctor and audit through the real CLI on a connected home."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REDIRECT_URI, Connected
from tests.e2e.test_status import STATUS_KEYS
from tests.support.cli import cli_env
from tests.support.summary import find_secrets


def doctor(connected: Connected, env: dict[str, str] | None = None) -> dict[str, dict]:
    result = connected.run("doctor", "--json", env=env)
    checks = {check["name"]: check for check in json.loads(result.stdout)}
    assert result.code == (0 if all(c["ok"] for c in checks.values()) else 1)
    return checks


def test_doctor_passes_on_a_healthy_home(connected: Connected) -> None:
    checks = doctor(connected)
    assert all(check["ok"] for check in checks.values()), checks
    assert {
        "config",
        "key",
        "state integrity",
        "template",
        "FreshBooks",
        "SFTP login",
        "SFTP inbound writable",
        "SFTP outbound listable",
        "clock",
    } <= set(checks)
    assert not list(connected.inbound.iterdir())  # the probe was removed


def test_doctor_names_a_bad_config(connected: Connected) -> None:
    checks = doctor(connected, env={"FBSTAMPLI_SYNC_MAX_ATTEMPTS": "lots"})
    assert checks["config"]["ok"] is False
    assert "sync.max_attempts" in checks["config"]["detail"]


def test_doctor_names_a_wrong_key(connected: Connected) -> None:
    checks = doctor(connected, env={"FBSTAMPLI_DB_KEY": "ab" * 32})
    assert checks["key and state"]["ok"] is False
    assert "cannot be decrypted" in checks["key and state"]["detail"]


def test_doctor_names_a_bad_template(connected: Connected, tmp_path: Path) -> None:
    bad = tmp_path / "template.toml"
    bad.write_text("[bill]\ncolumns = 3\n")
    checks = doctor(connected, env={"FBSTAMPLI_STAMPLI_TEMPLATE": str(bad)})
    assert checks["template"]["ok"] is False
    assert "template check" in checks["template"]["fix"]


def test_doctor_names_a_dead_freshbooks_login(connected: Connected) -> None:
    connected.freshbooks.auth.refresh(connected.secrets()[4])
    connected.freshbooks.expire_access_tokens()
    checks = doctor(connected)
    assert checks["FreshBooks"]["ok"] is False
    assert "auth login" in checks["FreshBooks"]["detail"] + checks["FreshBooks"]["fix"]
    assert checks["SFTP login"]["ok"] is True


def test_doctor_names_scopes_the_login_was_not_granted(connected: Connected) -> None:
    code = connected.freshbooks.issue_code(REDIRECT_URI, scope="user:profile:read user:bills:read")
    assert connected.run("auth", "login", "--code", code).code == 0
    checks = doctor(connected)
    assert checks["FreshBooks"]["ok"] is False
    detail = checks["FreshBooks"]["detail"]
    assert "user:bill_vendors:read, user:bill_payments:read" in detail
    assert "auth login" in detail


def test_doctor_names_an_unwritable_inbound(connected: Connected) -> None:
    connected.sftp.faults.deny_writes = True
    checks = doctor(connected)
    assert checks["SFTP login"]["ok"] is True
    assert checks["SFTP inbound writable"]["ok"] is False


def test_doctor_names_an_unreachable_sftp_server(connected: Connected) -> None:
    connected.sftp.stop()
    checks = doctor(connected)
    assert checks["SFTP login"]["ok"] is False
    assert "not reachable" in checks["SFTP login"]["detail"]
    assert checks["SFTP login"]["fix"].startswith("server not reachable")
    assert "password" not in checks["SFTP login"]["fix"]
    assert checks["SFTP inbound writable"]["skipped"] is True
    assert checks["SFTP inbound writable"]["detail"] == "skipped: the SFTP login did not work"


def test_status_json_keeps_its_schema_and_shows_no_secret(connected: Connected) -> None:
    before = connected.run("status", "--json")
    assert before.code == 0
    assert set(json.loads(before.stdout)) == STATUS_KEYS
    assert connected.run("push-bills").code == 0
    after = json.loads(connected.run("status", "--json").stdout)
    assert set(after) == STATUS_KEYS
    assert after["schema"] == 2
    assert after["freshbooks_behaviour"]["sort.bills"]["value"] == "honoured"
    assert after["freshbooks"]["logged_in"] is True
    assert after["sftp"]["host_key"].split()[1] == connected.sftp.host_key.sha256_fingerprint
    assert after["runs"]["push-bills"]["exit_code"] == 0
    assert after["deliveries"]["delivered"] > 0
    assert after["deliveries"]["waiting"] == {}
    places = {
        "status --json before": before.stdout,
        "status --json after": json.dumps(after),
        "status": connected.run("status").output,
    }
    assert find_secrets(connected.named_secrets(), places) == []


def test_audit_shows_one_bills_trail_in_time_order(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    bill_id = sorted(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number="AUDITED")
    assert connected.run("push-bills").code == 0
    rows = json.loads(connected.run("audit", "--bill", str(bill_id), "--format", "json").stdout)
    actions = [row["action"] for row in rows if row["kind"] == "bill"]
    assert actions == ["queued_new", "delivered", "queued_updated", "delivered"]
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)
    csv_out = connected.run("audit", "--bill", str(bill_id), "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "at,kind,fb_id,action,detail,run_id"


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01"])
def test_audit_rejects_a_bad_date(connected: Connected, since: str) -> None:
    result = connected.run("audit", "--since", since)
    assert result.code == 2
    assert "--since" in result.stderr


def test_backup_and_restore_round_trip_refusing_a_newer_state(
    connected: Connected, tmp_path: Path
) -> None:
    backup = tmp_path / "state-backup.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    assert backup.stat().st_mode & 0o777 == 0o600
    assert connected.run("push-bills").code == 0  # the state moves on after the backup
    refused = connected.run("state", "restore", str(backup))
    assert refused.code == 2
    assert "--force" in refused.stderr
    restored = connected.run("state", "restore", str(backup), "--force")
    assert restored.code == 0, restored.stderr
    status = json.loads(connected.run("status", "--json").stdout)
    assert status["deliveries"]["delivered"] == 0  # back to before the push
    assert status["freshbooks"]["logged_in"] is True


def test_a_backup_restores_at_once_without_force(connected: Connected, tmp_path: Path) -> None:
    # Taking the backup is recorded in the audit trail, but it is no change of the state.
    backup = tmp_path / "state-backup.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    restored = connected.run("state", "restore", str(backup))
    assert restored.code == 0, restored.stderr


def test_backups_and_reports_never_replace_the_homes_files_links_or_devices(
    connected: Connected, tmp_path: Path
) -> None:
    state = connected.home / "state.db"
    before = state.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "target.csv")
    for args, says in [
        (["state", "backup", str(state)], "fbstampli's own files"),
        (["state", "backup", str(connected.home / "state.key")], "fbstampli's own files"),
        (["state", "backup", "/dev/null"], "other than a plain file"),
        (["reconcile", "--output", str(link)], "other than a plain file"),
        (["reconcile", "--output", str(connected.home / "config.toml")], "own files"),
        (["state", "restore", str(state)], "own file, not a backup"),
    ]:
        result = connected.run(*args)
        assert result.code == 2, (args, result.stderr)
        assert says in result.stderr
    assert state.read_bytes() == before
    assert link.is_symlink()
    assert Path("/dev/null").is_char_device()


def test_restore_refuses_a_backup_made_with_another_key(
    connected: Connected, tmp_path: Path
) -> None:
    from tests.e2e.conftest import connect

    other = connect(tmp_path / "other", connected.freshbooks, connected.sftp)
    backup = tmp_path / "other-backup.db"
    assert other.run("state", "backup", str(backup)).code == 0
    result = connected.run("state", "restore", str(backup), "--force")
    assert result.code == 4
    assert "cannot be decrypted" in result.stderr


def test_the_log_file_tells_each_runs_outcome_and_problems_without_secrets(
    connected: Connected,
) -> None:
    assert connected.run("-q", "push-bills").code == 0
    bill_id = next(iter(sorted(connected.freshbooks.data.bills)))
    connected.freshbooks.update_bill(bill_id, bill_number="LOGGED")
    connected.sftp.faults.deny_writes = True
    failed = connected.run("-q", "push-bills")
    assert failed.code == 1
    connected.freshbooks.expire_access_tokens()
    assert connected.freshbooks.auth.refresh(connected.secrets()[4])  # someone else spent it
    refused = connected.run("-q", "push-bills")
    assert refused.code == 3

    text = (connected.home / "logs" / "fbstampli.log").read_text()
    assert "push-bills: exit 0; " in text
    assert "push-bills: exit 1; " in text
    assert "push-bills: upload of " in text
    assert "error (exit 3): FreshBooks rejected the refresh token" in text
    # The console said each problem once, in its own words.
    assert failed.stderr.count("upload of ") == 1
    assert find_secrets(connected.named_secrets(), {"log file": text}) == []


def test_log_format_json_writes_one_object_per_line_to_the_log_file(
    connected: Connected,
) -> None:
    assert connected.run("--log-format", "json", "push-bills").code == 0
    lines = (connected.home / "logs" / "fbstampli.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries, "nothing was logged"
    assert {"time", "level", "logger", "message"} <= set(entries[-1])
    assert entries[-1]["message"].startswith("push-bills: exit 0; ")


def test_status_shows_a_run_that_failed_with_its_real_exit_code(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    connected.freshbooks.expire_access_tokens()
    assert connected.freshbooks.auth.refresh(connected.secrets()[4])  # someone else spent it
    assert connected.run("push-bills").code == 3
    connected.sftp.stop()
    assert connected.run("pull-stampli", "--now").code == 75
    runs = json.loads(connected.run("status", "--json").stdout)["runs"]
    assert runs["push-bills"]["exit_code"] == 3
    assert runs["pull-stampli"]["exit_code"] == 75


PLANTED_BUG = (
    "import sys\n"
    "import fbstampli.services.status as ops\n"
    "def broken(*args, **kwargs):\n"
    "    raise ZeroDivisionError('a planted bug')\n"
    "ops.status = broken\n"
    "from fbstampli.cli import main\n"
    "sys.argv = ['fbstampli', *sys.argv[1:]]\n"
    "main()\n"
)


def test_a_bug_is_one_line_naming_the_log_file_that_holds_its_traceback(
    connected: Connected,
) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PLANTED_BUG, "status"],
        env=cli_env(connected.home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    log_file = connected.home / "logs" / "fbstampli.log"
    assert completed.returncode == 70
    assert completed.stderr.splitlines() == [
        f"fbstampli: internal error (ZeroDivisionError); this is a bug: the traceback is in "
        f"{log_file}; please report it"
    ]
    logged = log_file.read_text()
    assert "Traceback" in logged
    assert "ZeroDivisionError: a planted bug" in logged
