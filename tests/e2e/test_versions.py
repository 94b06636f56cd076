"""Every change in FreshBooks reaches Stampli as an AP team reads it (issue #27).

Each case of the issue, tried against the FreshBooks sandbox and a real SFTP
server through the real CLI, looking at what Stampli's inbound received: a
vendor rename, an edit, a deletion, a restore and an archive of bills, bill
payments and vendors, each a row whose Action and Version say what it does.
"""

import csv
import io
import json
from pathlib import Path

import pytest

from fbstampli.options import Options
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.services.webhooks import drain
from tests.e2e.conftest import Connected
from tests.e2e.test_realities import webhook

FILE_KINDS = {
    "categories": "category",
    "taxes": "tax",
    "vendors": "vendor",
    "bills": "bill",
    "payments": "payment",
}
ID_COLUMN = {
    "category": "GL Account ID",
    "tax": "Tax ID",
    "vendor": "FreshBooks Vendor ID",
    "bill": "FreshBooks Bill ID",
    "payment": "FreshBooks Payment ID",
}
DEFAULT_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "fbstampli" / "stampli" / "templates" / "default.toml"
)


def received(connected: Connected, before: set[str]) -> dict[str, list[dict[str, str]]]:
    """The rows of the files that reached the inbound since `before`, by kind."""
    rows: dict[str, list[dict[str, str]]] = {"vendor": [], "bill": [], "payment": []}
    for name in sorted(set(connected.inbound_files()) - before):
        kind = FILE_KINDS[name.rsplit("-", 1)[1].removesuffix(".csv")]
        text = (connected.inbound / name).read_text(encoding="utf-8")
        rows.setdefault(kind, []).extend(csv.DictReader(io.StringIO(text)))  # a category file
    return rows


def pushed(connected: Connected, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """One cron run of push-bills; returns the inbound as it was before it."""
    before = set(connected.inbound_files())
    result = connected.run("push-bills", *args, env=env)
    assert result.code == 0, result.stderr
    return before


def actions(rows: list[dict[str, str]], kind: str) -> set[tuple[str, str, str]]:
    """(id, Action, Version) of each object's rows."""
    return {(row[ID_COLUMN[kind]], row["Action"], row["Version"]) for row in rows}


def vendor_with_history(freshbooks: FreshBooksSandbox) -> tuple[int, list[int], list[int]]:
    """A vendor with four bills, three of them paid: the issue's example."""
    vendor_id = freshbooks.create_vendor("Supplies Ltd.")
    bills = [freshbooks.create_bill(vendor_id) for _ in range(4)]
    payments = [freshbooks.create_payment(bill_id, amount="10.00") for bill_id in bills[:3]]
    return vendor_id, bills, payments


@pytest.fixture
def history(connected: Connected) -> tuple[int, list[int], list[int]]:
    made = vendor_with_history(connected.freshbooks)
    pushed(connected)
    return made


def test_first_sync_sends_every_object_as_new_version_1(connected: Connected) -> None:
    vendor_id, bills, payments = vendor_with_history(connected.freshbooks)
    rows = received(connected, pushed(connected))
    assert (str(vendor_id), "NEW", "1") in actions(rows["vendor"], "vendor")
    assert {(str(b), "NEW", "1") for b in bills} <= actions(rows["bill"], "bill")
    assert {(str(p), "NEW", "1") for p in payments} <= actions(rows["payment"], "payment")


def test_vendor_rename_sends_the_vendor_row_only(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    vendor_id, bills, _ = history
    connected.freshbooks.update_vendor(vendor_id, vendor_name="Renamed Supplies Ltd.")
    rows = received(connected, pushed(connected))
    assert [(r["Vendor Name"], r["Action"], r["Version"]) for r in rows["vendor"]] == [
        ("Renamed Supplies Ltd.", "UPDATE", "2")
    ]
    assert rows["bill"] == []
    assert rows["payment"] == []
    # Neither the daily sweep, which re-reads every bill and payment, sends them again.
    sweep = received(connected, pushed(connected, "--full"))
    assert sweep == {"vendor": [], "bill": [], "payment": []}
    # A bill's next real change carries the new name.
    connected.freshbooks.update_bill(bills[0], bill_number="INV-EDITED")
    rows = received(connected, pushed(connected))
    assert {(r["Vendor Name"], r["Action"], r["Version"]) for r in rows["bill"]} == {
        ("Renamed Supplies Ltd.", "UPDATE", "2")
    }


def test_template_option_resends_a_renamed_vendors_bills_and_payments(
    connected: Connected, tmp_path: Path
) -> None:
    template = tmp_path / "template.toml"
    text = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    template.write_text(text.replace("resend_on_rename = false", "resend_on_rename = true"))
    env = {"FBSTAMPLI_STAMPLI_TEMPLATE": str(template)}
    vendor_id, bills, payments = vendor_with_history(connected.freshbooks)
    pushed(connected, env=env)
    connected.freshbooks.update_vendor(vendor_id, vendor_name="Renamed Supplies Ltd.")
    rows = received(connected, pushed(connected, env=env))
    assert {r["FreshBooks Bill ID"] for r in rows["bill"]} == {str(b) for b in bills}
    assert {r["FreshBooks Payment ID"] for r in rows["payment"]} == {str(p) for p in payments}
    assert {r["Vendor Name"] for r in rows["bill"] + rows["payment"]} == {"Renamed Supplies Ltd."}


def test_an_edit_goes_out_as_update_with_the_next_version(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    connected.freshbooks.update_bill(bills[1], bill_number="INV-2")
    rows = received(connected, pushed(connected))
    assert actions(rows["bill"], "bill") == {(str(bills[1]), "UPDATE", "2")}
    connected.freshbooks.update_bill(bills[1], bill_number="INV-3")
    rows = received(connected, pushed(connected))
    assert actions(rows["bill"], "bill") == {(str(bills[1]), "UPDATE", "3")}


def test_deleted_bill_goes_out_as_void_in_the_next_run(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    connected.freshbooks.delete_bill(bills[3])
    rows = received(connected, pushed(connected))  # a plain cron run, not the sweep
    assert actions(rows["bill"], "bill") == {(str(bills[3]), "VOID", "2")}
    assert {r["Status"] for r in rows["bill"]} == {"deleted"}
    # Neither the next run nor the daily sweep sends it again.
    assert received(connected, pushed(connected)) == {"vendor": [], "bill": [], "payment": []}
    sweep = received(connected, pushed(connected, "--full"))
    assert sweep == {"vendor": [], "bill": [], "payment": []}


def test_restored_bill_goes_out_as_restore(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    connected.freshbooks.delete_bill(bills[3])
    pushed(connected)
    connected.freshbooks.update_bill(bills[3], vis_state=0)
    rows = received(connected, pushed(connected))
    assert actions(rows["bill"], "bill") == {(str(bills[3]), "RESTORE", "3")}
    assert {r["Status"] for r in rows["bill"]} == {"active"}


def test_archived_bill_goes_out_as_update_with_status_archived_not_void(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    connected.freshbooks.update_bill(bills[2], vis_state=2)
    rows = received(connected, pushed(connected))
    assert actions(rows["bill"], "bill") == {(str(bills[2]), "UPDATE", "2")}
    assert {r["Status"] for r in rows["bill"]} == {"archived"}


def test_deleted_payment_goes_out_as_void_in_the_next_run(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, _, payments = history
    connected.freshbooks.delete_payment(payments[0])
    rows = received(connected, pushed(connected))
    assert actions(rows["payment"], "payment") == {(str(payments[0]), "VOID", "2")}


def test_deleted_vendor_goes_out_as_void_in_the_next_run(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    vendor_id, _, _ = history
    connected.freshbooks.delete_vendor(vendor_id)
    rows = received(connected, pushed(connected))
    assert actions(rows["vendor"], "vendor") == {(str(vendor_id), "VOID", "2")}
    assert received(connected, pushed(connected, "--full"))["vendor"] == []


def test_no_change_run_lists_at_most_two_pages_per_kind(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    connected.freshbooks.reset_counters()
    assert received(connected, pushed(connected)) == {"vendor": [], "bill": [], "payment": []}
    for kind in ("bill_vendors", "bills", "bill_payments"):
        assert connected.freshbooks.count("GET", f"{kind}.list") <= 2, kind


def test_status_counts_a_deleted_bill_on_its_own_line_never_as_in_stampli(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    before = json.loads(connected.run("status", "--json").stdout)["deliveries"]
    connected.freshbooks.delete_bill(bills[3])
    pushed(connected)
    status = connected.run("status")
    document = json.loads(connected.run("status", "--json").stdout)["deliveries"]
    in_stampli = before["by_kind"]["bill"]["in_stampli"]
    assert document["by_kind"]["bill"]["in_stampli"] == in_stampli - 1
    assert document["deleted"]["bill"] == {"deleted": 1, "voided": 1}
    assert "1 bills deleted in FreshBooks, 1 voided in Stampli" in status.stdout
    assert f"{in_stampli - 1:,} of" in status.stdout


def test_the_audit_records_delete_restore_and_archive(
    connected: Connected, history: tuple[int, list[int], list[int]]
) -> None:
    _, bills, _ = history
    connected.freshbooks.delete_bill(bills[3])
    pushed(connected)
    connected.freshbooks.update_bill(bills[3], vis_state=0)
    connected.freshbooks.update_bill(bills[2], vis_state=2)
    pushed(connected)
    trail = {}
    for bill_id in (bills[3], bills[2]):
        audit = connected.run("audit", "--bill", str(bill_id), "--format", "json")
        assert audit.code == 0, audit.stderr
        trail[bill_id] = audit.stdout
    assert "deleted_in_freshbooks" in trail[bills[3]]
    assert "restored_in_freshbooks" in trail[bills[3]]
    assert "archived_in_freshbooks" in trail[bills[2]]


@pytest.mark.parametrize("event", ["bill.delete", "bill_vendor.delete"])
def test_a_delete_webhook_sends_the_void_on_the_listeners_fast_path(
    connected: Connected, history: tuple[int, list[int], list[int]], event: str
) -> None:
    vendor_id, bills, _ = history
    if event == "bill.delete":
        kind, object_id = "bill", bills[0]
        connected.freshbooks.delete_bill(object_id)
    else:
        kind, object_id = "vendor", vendor_id
        connected.freshbooks.delete_vendor(object_id)
    webhook(connected, event, object_id)
    before = set(connected.inbound_files())
    assert drain(Options(home=connected.home, env={})) == 0  # what serve-webhook's worker runs
    rows = received(connected, before)
    assert actions(rows[kind], kind) == {(str(object_id), "VOID", "2")}
