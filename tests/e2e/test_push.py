"""push-bills and retry through the real CLI, the FreshBooks sandbox and a real SFTP server."""

import csv
import io
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.sync.marker import is_marker_name
from tests.e2e.conftest import REDIRECT_URI, Connected, connect, pin_sftp
from tests.support.cli import one_line, start
from tests.support.summary import find_secrets


def rows_of(connected: Connected, suffix: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in connected.inbound_files():
        if name.endswith(suffix):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            rows.extend(csv.DictReader(io.StringIO(text)))
    return rows


def bill_ids(connected: Connected) -> list[str]:
    return sorted({row["FreshBooks Bill ID"] for row in rows_of(connected, "-bills.csv")})


def active(records: dict) -> list[int]:
    return sorted(
        record_id for record_id, record in records.items() if record.get("vis_state", 0) != 1
    )


def test_first_run_delivers_every_vendor_bill_and_payment(connected: Connected) -> None:
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Sent 5 files to Stampli")  # said in a pipe too
    assert result.stderr == ""
    names = connected.inbound_files()
    assert [name.rsplit("_", 1)[1] for name in names] == [
        "0-categories.csv",  # the coding lists first (issue 26)
        "0-taxes.csv",
        "1-vendors.csv",
        "2-bills.csv",
        "3-payments.csv",
    ]
    data = connected.freshbooks.data
    vendor_ids = {row["FreshBooks Vendor ID"] for row in rows_of(connected, "-vendors.csv")}
    assert vendor_ids == {str(i) for i in active(data.vendors)}
    assert bill_ids(connected) == sorted(str(i) for i in active(data.bills))
    payment_ids = {row["FreshBooks Payment ID"] for row in rows_of(connected, "-payments.csv")}
    assert payment_ids == {str(i) for i in active(data.payments)}


def test_bill_rows_carry_terms_payment_state_and_line_coding(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    rows = rows_of(connected, "-bills.csv")
    bills = connected.freshbooks.data.bills
    for row in rows:
        bill = bills[int(row["FreshBooks Bill ID"])]
        assert row["Terms (Days)"] == str(bill["due_offset_days"])
        assert row["Payment Status"] in {"unpaid", "partial", "paid", "overdue"}
        total = float(row["Invoice Total"])
        assert float(row["Amount Paid"]) + float(row["Amount Outstanding"]) == pytest.approx(total)
        assert row["Document Type"] == ("credit" if total < 0 else "invoice")
    assert all(row["GL Account ID"].isdigit() for row in rows if row["Line Number"])
    assert any(row["Tax Percent 1"] for row in rows)


def test_connect_through_the_cli_sets_up_a_home_that_pushes(
    tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    """init, auth login and auth sftp as commands (the other tests set up in-process)."""
    through_cli = connect(tmp_path / "home", freshbooks, sftp_server)
    result = through_cli.run("push-bills")
    assert result.code == 0, result.stderr
    assert bill_ids(through_cli) == sorted(str(i) for i in active(freshbooks.data.bills))


def test_second_run_delivers_nothing(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    before = connected.inbound_files()
    assert connected.run("push-bills").code == 0
    assert connected.run("push-bills", "--full").code == 0
    assert connected.inbound_files() == before


def test_changed_bill_is_delivered_once_as_update(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    bill_id = active(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number="CHANGED-1")
    before = set(connected.inbound_files())
    assert connected.run("push-bills").code == 0
    assert connected.run("push-bills").code == 0
    new = sorted(set(connected.inbound_files()) - before)
    bills_files = [name for name in new if name.endswith("-bills.csv")]
    assert len(bills_files) == 1
    rows = list(csv.DictReader(io.StringIO((connected.inbound / bills_files[0]).read_text())))
    assert {row["FreshBooks Bill ID"] for row in rows} == {str(bill_id)}
    assert {row["Invoice Number"] for row in rows} == {"CHANGED-1"}
    # Payment rows name the bill's invoice number, so that bill's payments change too;
    # no other payment is sent again.
    for name in (name for name in new if name.endswith("-payments.csv")):
        rows = list(csv.DictReader(io.StringIO((connected.inbound / name).read_text())))
        assert {row["FreshBooks Bill ID"] for row in rows} == {str(bill_id)}


def test_deleted_bill_is_recorded_in_the_audit_trail_not_sent_when_set_to_report(
    connected: Connected,
) -> None:
    env = {"FBSTAMPLI_SYNC_DELETED_BILLS": "report"}
    assert connected.run("push-bills", env=env).code == 0
    bill_id = active(connected.freshbooks.data.bills)[1]
    connected.freshbooks.delete_bill(bill_id)
    before = connected.inbound_files()
    result = connected.run("push-bills", "--full", "--json", env=env)
    assert result.code == 0, result.stderr
    assert '"deleted": 1' in result.stdout
    assert connected.inbound_files() == before
    audit = connected.run("audit", "--bill", str(bill_id), "--format", "json")
    assert audit.code == 0
    assert "deleted_in_freshbooks" in audit.stdout


def test_a_bill_deleted_while_the_list_is_read_does_not_hide_its_neighbour(
    connected: Connected,
) -> None:
    # FreshBooks pages by offset: deleting a bill on page 1 while page 2 is read moves
    # the first bill of page 2 onto page 1, which this run has already read.
    connected.freshbooks.seed(vendors=2, bills=150, payments=0, seed=5)
    bills = active(connected.freshbooks.data.bills)
    neighbour = bills[100]
    prefix = f"/accounting/account/{connected.freshbooks.account_id}/bills/bills"
    connected.freshbooks.hold(prefix, method="GET").release()  # page 1 goes through
    page_two = connected.freshbooks.hold(prefix, method="GET")
    process = start(connected.home, "push-bills")
    try:
        assert page_two.arrived.wait(30), "the push never asked for page 2 of bills"
        connected.freshbooks.delete_bill(bills[0])
    finally:
        page_two.release()
        _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    files_per_bill = Counter(
        bill_id
        for name in connected.inbound_files()
        if name.endswith("-bills.csv")
        for bill_id in {
            row["FreshBooks Bill ID"]
            for row in csv.DictReader(io.StringIO((connected.inbound / name).read_text()))
        }
    )
    assert files_per_bill[str(neighbour)] == 1
    assert set(files_per_bill.values()) == {1}


def test_sftp_down_fails_deliveries_and_next_run_sends_them(
    connected: Connected, sftp_root: Path
) -> None:
    port, pkey, password = connected.sftp.port, connected.sftp.host_pkey, connected.sftp.password
    connected.sftp.stop()
    down = connected.run("push-bills")
    assert down.code == 75  # unreachable is "try again later", as for FreshBooks
    assert "upload of" in down.stderr
    assert "not reachable (connection refused); next try " in down.stderr
    assert len(down.stderr.splitlines()) == 1, down.stderr
    assert list((sftp_root / "inbound").iterdir()) == []
    status = connected.run("retry", "--failed", "--queue-only")
    assert status.code == 0
    with SftpServer(sftp_root, port=port, host_pkey=pkey, password=password) as back:
        connected.sftp = back
        up = connected.run("push-bills")
        assert up.code == 0, up.stderr
        assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments


def test_failed_upload_backs_off_until_due(connected: Connected) -> None:
    connected.sftp.faults.deny_writes = True
    assert connected.run("push-bills").code == 1
    connected.sftp.faults.deny_writes = False
    again = connected.run("push-bills")
    assert again.code == 0
    assert connected.inbound_files() == []  # still backing off: 15 minutes not passed


def test_an_upload_refused_once_is_sent_again_on_a_fresh_connection_in_the_same_run(
    connected: Connected,
) -> None:
    refusal = connected.sftp.fail_at_rate(1.0, actions=("deny",), limit=1)
    result = connected.run("-q", "sync")
    assert refusal.injected == {"deny": 1}
    assert result.code == 0, result.stderr
    assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments


def test_a_connection_cut_mid_upload_is_told_in_our_one_line_only(connected: Connected) -> None:
    connected.sftp.fail_at_rate(1.0, actions=("disconnect",))
    result = connected.run("-q", "push-bills", env={"FBSTAMPLI_SFTP_UPLOAD_ATTEMPTS": "1"})
    assert result.code == 75
    lines = result.stderr.splitlines()
    assert lines, "the failure was not reported"
    assert all(line.startswith("fbstampli: upload of ") for line in lines), result.stderr


def test_retry_bill_resends_exactly_that_bill(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    bill_id = active(connected.freshbooks.data.bills)[2]
    before = set(connected.inbound_files())
    plain = connected.run("retry", "--bill", str(bill_id))
    assert plain.code == 0
    assert set(connected.inbound_files()) == before  # already delivered, no --force
    forced = connected.run("-v", "retry", "--bill", str(bill_id), "--force")
    assert forced.code == 0, forced.stderr
    new = sorted(set(connected.inbound_files()) - before)
    assert len(new) == 1
    rows = list(csv.DictReader(io.StringIO((connected.inbound / new[0]).read_text())))
    assert {row["FreshBooks Bill ID"] for row in rows} == {str(bill_id)}
    assert (connected.inbound / new[0]).read_bytes() != b""


def test_dry_run_uploads_nothing_and_remembers_nothing(connected: Connected) -> None:
    result = connected.run("-v", "push-bills", "--dry-run")
    assert result.code == 0, result.stderr
    assert connected.inbound_files() == []
    assert len(list((connected.home / "dry-run").iterdir())) == 5
    assert connected.run("push-bills").code == 0
    assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments


def test_spent_refresh_token_exits_3_with_the_fix(connected: Connected) -> None:
    refresh_token = connected.secrets()[4]
    assert connected.freshbooks.auth.refresh(refresh_token) is not None  # someone else spent it
    connected.freshbooks.expire_access_tokens()
    result = connected.run("push-bills")
    assert result.code == 3, result.stderr
    assert one_line(result.stderr)
    assert "fbstampli auth login" in result.stderr
    assert refresh_token not in result.output


def test_refresh_answer_lost_after_freshbooks_spent_the_token_exits_3_then_login_recovers(
    connected: Connected,
) -> None:
    connected.freshbooks.expire_access_tokens()
    connected.freshbooks.lose("/auth/oauth/token")
    result = connected.run("push-bills")
    assert result.code == 3, result.stderr
    assert one_line(result.stderr)
    assert "lost on the way" in result.stderr
    assert "fbstampli auth login" in result.stderr
    assert connected.inbound_files() == []
    code = connected.freshbooks.issue_code(REDIRECT_URI)
    assert connected.run("auth", "login", "--code", code).code == 0
    again = connected.run("push-bills")
    assert again.code == 0, again.stderr
    assert bill_ids(connected) == sorted(str(i) for i in active(connected.freshbooks.data.bills))


def test_refresh_answer_lost_before_freshbooks_acted_is_asked_again_in_the_same_run(
    connected: Connected,
) -> None:
    connected.freshbooks.expire_access_tokens()
    connected.freshbooks.drop("/auth/oauth/token")
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    assert len(connected.inbound_files()) == 5  # categories, taxes, vendors, bills, payments


def test_access_token_expiry_is_refreshed_and_saved(connected: Connected) -> None:
    old_refresh = connected.secrets()[4]
    connected.freshbooks.expire_access_tokens()
    assert connected.run("push-bills").code == 0
    new_refresh = connected.secrets()[4]
    assert new_refresh != old_refresh  # the rotated pair was saved
    connected.freshbooks.expire_access_tokens()
    assert connected.run("push-bills").code == 0  # and the saved one works


def test_no_secret_appears_in_any_output_or_log(connected: Connected) -> None:
    outputs = [
        connected.run("-vv", "push-bills"),
        connected.run("auth", "status", "--json"),
        connected.run("push-bills", "--json"),
    ]
    places: dict[str, str | bytes] = {
        f"output of run {index}": result.output for index, result in enumerate(outputs)
    }
    places["logs"] = "".join(path.read_text() for path in (connected.home / "logs").glob("*.log*"))
    assert find_secrets(connected.named_secrets(), places) == []


def test_state_file_is_unreadable_without_the_key(connected: Connected) -> None:
    raw = (connected.home / "state.db").read_bytes()
    for secret in connected.secrets()[1:]:
        assert secret.encode() not in raw
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite3.connect(connected.home / "state.db").execute(
            "SELECT 1 FROM sqlite_master"
        ).fetchall()


def test_folders_set_in_the_config_apply_to_a_login_stored_without_them(
    connected: Connected,
) -> None:
    # `auth sftp` was run without --inbound/--outbound: the config keeps the folders.
    (connected.sftp.root / "elsewhere").mkdir()
    result = connected.run("push-bills", env={"FBSTAMPLI_STAMPLI_INBOUND_DIR": "elsewhere"})
    assert result.code == 0, result.stderr
    sent = [p.name for p in (connected.sftp.root / "elsewhere").iterdir()]
    assert len([name for name in sent if not is_marker_name(name)]) == 5
    assert len([name for name in sent if is_marker_name(name)]) == 1  # the marker goes along
    assert connected.inbound_files() == []


def test_a_folder_given_to_auth_sftp_wins_over_the_config(connected: Connected) -> None:
    sftp = connected.sftp
    (sftp.root / "given").mkdir()
    (sftp.root / "configured").mkdir()
    stored = pin_sftp(connected.home, sftp, "--inbound", "given")
    assert stored.code == 0, stored.stderr
    result = connected.run("push-bills", env={"FBSTAMPLI_STAMPLI_INBOUND_DIR": "configured"})
    assert result.code == 0, result.stderr
    assert len([p for p in (sftp.root / "given").iterdir() if not is_marker_name(p.name)]) == 5
    assert list((sftp.root / "configured").iterdir()) == []
