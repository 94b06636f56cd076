"""`--json` on every reporting command, in one shape (issue 29).

A command that reports what it did prints its RunReport with `--json`: command, exit_code,
counts, problems, notes and items; the lists (`business list`, `webhooks list`, `audit`) a
JSON list; `reconcile` and `audit` take `--json` as they take `--format json`. Each test runs
the real CLI and parses what it printed.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Connected, pin_sftp
from tests.support.cli import Result, one_line, run

REPORT_KEYS = {"command", "exit_code", "counts", "problems", "notes", "items"}
EXAMPLE_TEMPLATE = Path(__file__).resolve().parents[2] / "examples" / "stampli-template.toml"


def report_of(result: Result, command: str) -> dict[str, Any]:
    """The one JSON document `result` printed: a RunReport of `command` whose exit code is the
    process's own."""
    document = json.loads(result.stdout)
    assert set(document) == REPORT_KEYS, document
    assert document["command"] == command
    assert document["exit_code"] == result.code
    return document


def test_init_json_is_the_run_report(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "init", "--key-source", "file", "--json")
    assert result.code == 0, result.stderr
    document = report_of(result, "init")
    assert any(str(tmp_path / "home") in note for note in document["notes"] + document["items"])


def test_template_check_json_is_the_run_report(tmp_path: Path) -> None:
    good = run(tmp_path, "template", "check", str(EXAMPLE_TEMPLATE), "--json")
    assert good.code == 0, good.stderr
    report_of(good, "template check")


def test_state_backup_and_restore_json_are_run_reports(
    connected: Connected, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.db"
    made = connected.run("state", "backup", str(backup), "--json")
    assert made.code == 0, made.stderr
    report_of(made, "state backup")
    restored = connected.run("state", "restore", str(backup), "--force", "--json")
    assert restored.code == 0, restored.stderr
    report_of(restored, "state restore")


def test_auth_sftp_smtp_and_logout_json_are_run_reports(connected: Connected) -> None:
    secrets = connected.secrets()
    sftp = pin_sftp(connected.home, connected.sftp, "--json")
    assert sftp.code == 0, sftp.stderr
    report_of(sftp, "auth sftp")
    smtp = connected.run("auth", "smtp", "--host", "127.0.0.1", "--security", "none", "--json")
    assert smtp.code == 0, smtp.stderr
    report_of(smtp, "auth smtp")
    logout = connected.run("auth", "logout", "--json")
    assert logout.code == 0, logout.stderr
    report_of(logout, "auth logout")
    for result in (sftp, smtp, logout):
        assert not any(secret in result.output for secret in secrets)


def test_business_remove_json_is_the_run_report(tmp_path: Path) -> None:
    folder = tmp_path / "installation"
    assert run(folder, "business", "add", "gamma", "--key-source", "file").code == 0
    removed = run(folder, "business", "remove", "gamma", "--json")
    assert removed.code == 0, removed.stderr
    report_of(removed, "business remove")
    assert json.loads(run(folder, "business", "list", "--json").stdout) == []


def test_webhooks_register_verify_and_delete_json_are_run_reports(connected: Connected) -> None:
    nobody = "http://127.0.0.1:9/webhooks/freshbooks"  # registered; the handshake goes unanswered
    registered = connected.run("webhooks", "register", "--url", nobody, "--json")
    report_of(registered, "webhooks register")
    fb = connected.freshbooks
    callback_id = min(fb.callbacks[fb.account_id])
    verified = connected.run("webhooks", "verify", str(callback_id), "--resend", "--json")
    report_of(verified, "webhooks verify")
    deleted = connected.run("webhooks", "delete", str(callback_id), "--json")
    assert deleted.code == 0, deleted.stderr
    report_of(deleted, "webhooks delete")


def test_reconcile_acknowledge_json_is_the_run_report(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    fb = connected.freshbooks
    paid = {int(payment["billid"]) for payment in fb.data.payments.values()}
    bill = min(i for i, b in fb.data.bills.items() if i not in paid and b["vis_state"] == 0)
    fb.create_payment(bill, amount="10.00")  # paid after go-live: Stampli should know
    assert connected.run("sync").code == 0
    result = connected.run(
        "reconcile", "acknowledge", "--bill", str(bill), "--reason", "cheque", "--json"
    )
    assert result.code == 0, result.stderr
    report_of(result, "reconcile acknowledge")


@pytest.mark.parametrize("command", [["reconcile"], ["audit"]])
def test_json_is_format_json_for_the_reports_that_have_formats(
    connected: Connected, command: list[str]
) -> None:
    assert connected.run("sync").code == 0
    as_json = connected.run(*command, "--json")
    as_format = connected.run(*command, "--format", "json")
    assert as_json.code == as_format.code == 0, as_json.stderr
    assert as_json.stdout == as_format.stdout
    assert json.loads(as_json.stdout)


@pytest.mark.parametrize("command", [["reconcile"], ["audit"]])
def test_json_beside_another_format_is_refused_in_one_line(
    connected: Connected, command: list[str]
) -> None:
    result = connected.run(*command, "--json", "--format", "csv")
    assert result.code == 2
    assert one_line(result.stderr)
    assert result.stderr.startswith("fbstampli: error: --json and --format csv disagree")
    assert result.stdout == ""
