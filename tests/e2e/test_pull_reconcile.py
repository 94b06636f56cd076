"""push -> Stampli simulator -> pull-stampli -> reconcile, through the real CLI and SFTP."""

import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from fbstampli.models import ExportKind
from fbstampli.reconcile_rows import COLUMNS
from fbstampli.sandbox.stampli import StampliSimulator
from tests.e2e.conftest import Connected
from tests.support.cli import cli_env, one_line

# In a new process: a log file is left to process exit on this path.
pytestmark = pytest.mark.cli_process


def pushed(connected: Connected) -> StampliSimulator:
    assert connected.run("push-bills").code == 0
    return StampliSimulator(connected.sftp.root)


def test_pull_stores_exports_and_a_second_pull_processes_nothing(connected: Connected) -> None:
    stampli = pushed(connected)
    bills = sorted(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    stampli.export_captures(bills)
    first = connected.run("pull-stampli", "--now", "--json")
    assert first.code == 0, first.stderr
    assert json.loads(first.stdout)["counts"]["records"] == len(bills)
    second = connected.run("pull-stampli", "--now", "--json")
    assert json.loads(second.stdout)["counts"] == {}
    audit = json.loads(
        connected.run("audit", "--bill", str(bills[0].fb_id), "--format", "json").stdout
    )
    assert "stampli_capture" in [row["action"] for row in audit]


def test_pull_waits_for_its_interval_unless_now(connected: Connected) -> None:
    stampli = pushed(connected)
    assert connected.run("pull-stampli").code == 0
    stampli.export_captures(list(stampli.inbound_bills().values()))
    early = json.loads(connected.run("pull-stampli", "--json").stdout)
    assert early["counts"] == {"not_due": 1}  # it did not look, and says so


def test_a_download_cut_once_is_fetched_again_within_the_same_run(connected: Connected) -> None:
    stampli = pushed(connected)
    bills = list(stampli.inbound_bills().values())
    stampli.export_captures(bills)
    connected.sftp.faults.drop_reads = 1
    result = connected.run("pull-stampli", "--now", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["records"] == len(bills)


def test_a_download_cut_twice_is_exit_75_in_one_line_and_the_next_run_stores_it_once(
    connected: Connected,
) -> None:
    stampli = pushed(connected)
    bills = list(stampli.inbound_bills().values())
    stampli.export_captures(bills)
    connected.sftp.faults.drop_reads = 2
    cut = connected.run("pull-stampli", "--now")
    assert cut.code == 75, cut.stderr
    assert one_line(cut.stderr), cut.stderr
    again = connected.run("pull-stampli", "--now", "--json")
    assert again.code == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["records"] == len(bills)
    assert json.loads(connected.run("pull-stampli", "--now", "--json").stdout)["counts"] == {}


def test_malformed_file_is_quarantined_and_the_rest_are_stored(connected: Connected) -> None:
    stampli = pushed(connected)
    bills = list(stampli.inbound_bills().values())
    stampli.export_captures(bills)
    broken = stampli.write_malformed(ExportKind.PAYMENT)
    result = connected.run("pull-stampli", "--now", "--json")
    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["counts"]["records"] == len(bills)
    assert report["counts"]["quarantined"] == 1
    assert broken.name in report["problems"][0]
    assert (connected.home / "stampli" / "quarantine" / broken.name).exists()
    status = json.loads(connected.run("status", "--json").stdout)
    assert [f["name"] for f in status["stampli_files"]["quarantined"]] == [broken.name]
    again = connected.run("pull-stampli", "--now", "--json")
    assert again.code == 0  # quarantined once, not re-tried every run


def test_identical_reupload_is_not_processed_twice_but_a_changed_file_is(
    connected: Connected,
) -> None:
    stampli = pushed(connected)
    bills = sorted(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    path = stampli.export_payments([(bills[0], Decimal("5.00"), bills[0].currency)])
    assert connected.run("pull-stampli", "--now").code == 0
    copy = path.with_name("stampli_payment_copy.csv")
    copy.write_bytes(path.read_bytes())
    dup = json.loads(connected.run("pull-stampli", "--now", "--json").stdout)
    assert dup["counts"] == {"duplicates": 1}
    path.write_bytes(path.read_bytes().replace(b"5.00", b"6.00"))
    changed = json.loads(connected.run("pull-stampli", "--now", "--json").stdout)
    assert changed["counts"]["records"] == 1


def test_reconcile_classifies_every_prepared_case_exactly(connected: Connected) -> None:
    fb = connected.freshbooks
    vendor = sorted(fb.data.vendors)[0]
    make = {
        name: fb.create_bill(
            vendor,
            bill_number=name,
            currency_code="USD",
            lines=[
                {
                    "description": name,
                    "quantity": 1,
                    "unit_cost": "100.00",
                }
            ],
        )
        for name in ("MATCH", "DIFF", "FBONLY", "STONLY", "APPROVED", "UNCAPTURED", "CAD")
    }
    for name in ("MATCH", "DIFF", "FBONLY"):
        fb.create_payment(make[name], amount="100.00")
    fb.create_payment(make["CAD"], amount="100.00")
    stampli = pushed(connected)
    inbound = stampli.inbound_bills()
    bill = {name: inbound[bill_id] for name, bill_id in make.items()}
    stampli.export_captures([b for n, b in bill.items() if n != "UNCAPTURED"])
    from datetime import UTC, datetime, timedelta

    stampli.export_approvals(
        [(bill["APPROVED"], "approved", datetime.now(UTC) - timedelta(days=30))]
    )
    stampli.export_payments(
        [
            (bill["MATCH"], Decimal("100.00"), "USD"),
            (bill["DIFF"], Decimal("90.00"), "USD"),
            (bill["STONLY"], Decimal("100.00"), "USD"),
            (bill["CAD"], Decimal("100.00"), "CAD"),
            (424242, Decimal("1.00"), "USD"),
        ]
    )
    assert connected.run("pull-stampli", "--now").code == 0
    env = {"FBSTAMPLI_RECONCILE_UNCAPTURED_HOURS": "1"}
    report = connected.run("reconcile", "--format", "json", "--fail-on-mismatch", env=env)
    assert report.code == 1  # attention needed
    outcomes = {item["fb_bill_id"]: item["outcome"] for item in json.loads(report.stdout)["items"]}
    assert outcomes[make["MATCH"]] == "matched"
    assert outcomes[make["DIFF"]] == "amount_differs"
    assert outcomes[make["FBONLY"]] == "paid_in_freshbooks_only"
    assert outcomes[make["STONLY"]] == "paid_in_stampli_only"
    assert outcomes[make["APPROVED"]] == "approved_not_paid"
    assert outcomes[make["CAD"]] == "currency_differs"
    assert outcomes[424242] == "unknown_to_freshbooks"
    csv_file = connected.home / "reconcile.csv"
    assert connected.run("reconcile", "--format", "csv", "--output", str(csv_file)).code == 0
    rows = {row["invoice_number"]: row for row in csv.DictReader(io.StringIO(csv_file.read_text()))}
    assert list(rows["DIFF"]) == COLUMNS
    vendor_name = fb.data.vendors[vendor]["vendor_name"]
    assert rows["DIFF"]["vendor"] == vendor_name
    assert rows["DIFF"]["paid_in_freshbooks"] == "100.00 USD"
    assert rows["DIFF"]["paid_in_stampli"] == "90.00 USD"
    assert rows["DIFF"]["why"] == "FreshBooks recorded 100.00 USD but Stampli paid 90.00 USD."
    assert rows["FBONLY"]["why"].startswith("FreshBooks recorded 100.00 USD paid, but Stampli")
    assert rows["STONLY"]["paid_in_stampli"] == "100.00 USD"
    assert rows["DIFF"]["open_balance"] == "0.00"
    assert rows["STONLY"]["open_balance"] == "100.00"  # FreshBooks still owes it all
    assert rows["CAD"]["open_balance"] == "0.00"
    assert rows["APPROVED"]["approved_at"][:10] == (
        datetime.now(UTC) - timedelta(days=30)
    ).strftime("%Y-%m-%d")
    assert rows["UNCAPTURED"]["sent_at"]
    for name in make:
        assert rows[name]["issue_date"]
        assert (rows[name]["bill_total"], rows[name]["currency"]) == ("100.00", "USD")
    assert rows["CAD"]["paid_in_stampli"] == "100.00 CAD"  # Stampli paid in another currency


def test_sync_runs_push_pull_and_reconcile_under_one_lock(connected: Connected) -> None:
    result = connected.run("sync", "--json")
    assert result.code == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["push-bills.queued.bill"] > 0
    quiet = connected.run("-q", "sync")
    assert quiet.code == 0
    assert quiet.output == ""


def test_an_export_name_that_climbs_out_of_the_folder_is_never_written_locally(
    connected: Connected, tmp_path: Path
) -> None:
    stampli = pushed(connected)
    bills = sorted(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    stampli.export_captures(bills[:2])
    # A legal POSIX name that means "two folders up" to anything treating \ as a separator.
    hostile = connected.sftp.root / "outbound" / "stampli_payment_..\\..\\escape.csv"
    hostile.write_bytes(
        b"Stampli Invoice ID,Payment ID,Payment Date,Amount\r\nSTP-1,P,2026-11-24,1\r\n"
    )
    result = connected.run("pull-stampli", "--now", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"files": 1, "records": 2}
    assert "unsafe name" in result.stderr
    assert not [p for p in tmp_path.rglob("*escape*") if p != hostile]


# The CLI's own peak: VmHWM. (ru_maxrss is not it on Linux: a child started by fork and exec
# keeps the parent's high-water mark, here pytest's, which grows with the whole suite.)
MEASURED = (
    "import runpy, sys\n"
    "sys.argv = ['fbstampli'] + sys.argv[1:]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_module('fbstampli', run_name='__main__')\n"
    "except SystemExit as stop:\n"
    "    code = stop.code\n"
    "with open('/proc/self/status') as status:\n"
    "    peak = next(line.split()[1] for line in status if line.startswith('VmHWM'))\n"
    "sys.stderr.write(f'maxrss_kb={peak}\\n')\n"
    "sys.exit(code)\n"
)


@pytest.mark.slow
def test_a_200_mb_export_is_pulled_in_bounded_memory(connected: Connected) -> None:
    """Streamed from the server to disk, parsed and inserted in chunks: RSS stays far below
    the file's size. (The SFTP server runs in this process; the CLI is measured alone.)"""
    path = connected.sftp.root / "outbound" / "stampli_payment_big.csv"
    wide = "Vendor " + "x" * 1900  # wide rows reach 200 MB with a modest row count
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(
            "Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,Vendor Name\r\n"
        )
        while out.tell() < 200 * 1024 * 1024:
            out.write(f"STP-{rows:07d},{rows},PAY-{rows},2026-11-24,1.00,{wide}\r\n")
            rows += 1
    completed = subprocess.run(
        [sys.executable, "-c", MEASURED, "pull-stampli", "--now", "--json"],
        env=cli_env(connected.home),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["counts"] == {"files": 1, "records": rows}
    maxrss_mb = int(completed.stderr.rsplit("maxrss_kb=", 1)[1].split()[0]) / 1024
    assert maxrss_mb < 150, f"peak RSS {maxrss_mb:.0f} MB for a 200 MB file"


def test_a_file_where_the_copies_folder_should_be_is_named(connected: Connected) -> None:
    pushed(connected)
    (connected.home / "stampli").write_text("not a folder")
    result = connected.run("pull-stampli", "--now")
    assert result.code == 2, result.stderr
    assert f"cannot keep Stampli's files in {connected.home / 'stampli'}" in result.stderr


def test_a_copy_left_by_a_killed_download_is_swept_by_the_next_pull(
    connected: Connected,
) -> None:
    stampli = pushed(connected)
    stampli.export_captures(list(stampli.inbound_bills().values()))
    copies = connected.home / "stampli"
    copies.mkdir(exist_ok=True)
    litter = copies / ".000001-stampli_capture_x.csv.0a1b2c3d.tmp"
    litter.write_text("half a file")
    assert connected.run("pull-stampli", "--now").code == 0
    assert not litter.exists()


def test_a_quarantine_is_told_once_and_leaves_status_when_a_fixed_file_is_stored(
    connected: Connected,
) -> None:
    stampli = pushed(connected)
    broken = stampli.write_malformed(ExportKind.PAYMENT)
    result = connected.run("pull-stampli", "--now")
    assert result.code == 1
    assert len(result.stderr.splitlines()) == 1  # once, not again as a log warning
    assert broken.name in result.stderr
    bill = next(iter(stampli.inbound_bills().values()))
    fixed = stampli.export_payments([(bill, bill.total, bill.currency)])
    fixed.rename(broken)  # Stampli sends the corrected file under the same name
    assert connected.run("pull-stampli", "--now").code == 0
    status = json.loads(connected.run("status", "--json").stdout)
    assert status["stampli_files"]["quarantined"] == []
