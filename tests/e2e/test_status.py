"""`fbstampli status` answers the AP lead in one screen, and its exit code says whether anything
needs attention (issue 16)."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from tests.e2e.conftest import Connected, connect_quickly

UTC = {"TZ": "UTC"}
# A failure that may pass by itself counts from its first moment, not after 2 hours of it.
AT_ONCE = {"FBSTAMPLI_MONITORING_FAILING_ATTENTION_HOURS": "0"}

# The keys of `status --json` (schema 2): a script reading them breaks when they change, so
# the schema number must change with them.
STATUS_KEYS = {
    "schema",
    "home",
    "now",
    "timezone",
    "attention",
    "freshbooks",
    "sftp",
    "runs",
    "deliveries",
    "stampli_files",
    "reconciliation",
    "webhooks",
    "freshbooks_behaviour",
}


@pytest.fixture
def unpaid(tmp_path: Path, sftp_server: SftpServer) -> Iterator[Connected]:
    """A home whose bills have no payments yet: a clean sync leaves nothing to act on."""
    with FreshBooksSandbox() as sandbox:
        sandbox.seed(vendors=4, bills=12, payments=0, seed=3)
        yield connect_quickly(tmp_path / "home", sandbox, sftp_server)


def normalised(text: str, connected: Connected) -> str:
    """The screen with what changes from run to run (port, folder, clock) made constant."""
    text = text.replace(str(connected.home), "<home>")
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return re.sub(r"\b\d{4}-\d\d-\d\d \d\d:\d\d [A-Z][\w+-]*", "<time>", text)


def test_a_clean_home_says_all_well_and_exits_0(unpaid: Connected) -> None:
    assert unpaid.run("sync", env=UTC).code == 0
    result = unpaid.run("status", env=UTC)
    assert result.code == 0, result.output
    assert normalised(result.stdout, unpaid).splitlines() == [
        "FreshBooks  Sandbox Supplies Ltd. (business 439000), logged in; last run <time> ok",
        "Stampli     stampli@127.0.0.1:<port>, host key pinned; last upload <time>",
        "Bills       12 of 12 in Stampli",
        "Vendors     4 of 4 · Payments none yet",
        "Exports     0 read today · none quarantined",
        "Reconcile   last run <time>: 0 matched · 12 in progress · 0 need attention",
        "All well. Times are local (UTC).",
    ]


def test_stuck_bill_quarantined_file_and_failed_run_are_named_and_exit_1(
    connected: Connected,
) -> None:
    assert connected.run("sync", env=UTC).code == 0
    broken = connected.sftp.root / "outbound" / "stampli_payments_20261201.csv"
    broken.write_text("garbage\n")
    assert connected.run("pull-stampli", "--now", env=UTC).code == 1
    connected.sftp.stop()
    for bill_id in range(1, 6):
        connected.freshbooks.update_bill(bill_id, bill_number=f"INV-X{bill_id}")
    assert connected.run("push-bills", env=UTC).code == 75

    result = connected.run("status", env={**UTC, **AT_ONCE})

    assert result.code == 1, result.output
    lines = normalised(result.stdout, connected).splitlines()
    assert lines[0] == (
        "FreshBooks  Sandbox Supplies Ltd. (business 439000), logged in; "
        "last run <time> push-bills could not reach a server; retries by itself (exit 75)"
    )
    assert lines[2] == "Bills       30 of 30 in Stampli · 5 failing"
    assert lines[3] == "Vendors     6 of 6 · Payments 10 of 10"
    failing = "(SFTP server not reachable (connection refused); next try <time>)"
    assert lines[4] == f'Failing     bill 5 "INV-X5" {failing}'
    assert lines[5] == f'            bill 4 "INV-X4" {failing}'
    assert lines[6] == f'            bill 3 "INV-X3" {failing}'
    assert lines[7] == "            and 2 more: `fbstampli status --stuck`"
    assert lines[8] == "Exports     0 read today · 1 quarantined:"
    assert lines[9].startswith("              stampli_payments_20261201.csv (line 1")
    assert lines[9].endswith("-> <home>/stampli/quarantine/stampli_payments_20261201.csv")
    assert "have Stampli export it again" in lines[10]
    assert lines[11].startswith("Reconcile   last run <time>: 0 matched · ")
    assert lines[-1].startswith("Needs attention: the last pull-stampli and push-bills")
    assert "5 not in Stampli yet after failing" in lines[-1]

    stuck = connected.run("status", "--stuck", env={**UTC, **AT_ONCE})
    assert stuck.code == 1
    # five bills, the payment queued behind them (not in Stampli either), the quarantined file
    assert len(stuck.stdout.splitlines()) == 7


def test_status_json_keeps_the_full_data_under_a_pinned_schema(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    result = connected.run("status", "--json")
    document = json.loads(result.stdout)
    assert set(document) == STATUS_KEYS
    assert document["schema"] == 2
    assert set(document["deliveries"]) == {
        "delivered",
        "waiting",
        "stuck_batches",
        "by_kind",
        "deleted",
        "failing",
        "queued",
        "without_document",
    }
    assert document["deliveries"]["by_kind"]["bill"] == {"objects": 30, "in_stampli": 30}
    assert result.code == (1 if document["attention"] else 0)


def test_status_quiet_prints_only_the_reason_on_stderr_and_exits_1(connected: Connected) -> None:
    connected.sftp.stop()
    assert connected.run("push-bills").code != 0
    result = connected.run("-q", "status", env=AT_ONCE)
    assert (result.code, result.stdout) == (1, "")
    # The one line cron mails says why (exit 1 alone told an operator nothing).
    assert result.stderr.startswith("fbstampli: needs attention: the last push-bills")
    assert result.stderr.count("\n") == 1
