"""The coding lists reach Stampli before the transactions (issue 26, item 2): FreshBooks'
expense categories and taxes as master files sorting before the vendors, delivered
incrementally like them, with the real CLI, the FreshBooks sandbox and a real SFTP server."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from fbstampli.clock import SystemClock, to_utc_text
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.realities import parse_realities
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.store import open_state
from fbstampli.sync.coding import LISTS
from tests.e2e.conftest import Connected, connect_quickly

CATEGORIES = "categories.list"
TAXES = "taxes.list"


def rows_of(connected: Connected, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((connected.inbound / name).read_text("utf-8"))))


def named(connected: Connected, ending: str, among: list[str] | None = None) -> list[str]:
    return [n for n in (among or connected.inbound_files()) if n.endswith(ending)]


def new_files(connected: Connected, before: set[str]) -> list[str]:
    return sorted(set(connected.inbound_files()) - before)


def age_the_last_read(connected: Connected, hours: int) -> None:
    """As if the coding lists were last read `hours` ago (the interval is in the state)."""
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        with store.transaction():
            moment = datetime.now(UTC) - timedelta(hours=hours)
            for coding in LISTS:
                store.put_value(coding.read_key, to_utc_text(moment))
    finally:
        store.close()


def test_the_categories_file_precedes_the_vendors_file_by_name_and_by_upload(
    connected: Connected,
) -> None:
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    names = connected.inbound_files()
    (categories,) = named(connected, "-categories.csv")
    (taxes,) = named(connected, "-taxes.csv")
    (vendors,) = named(connected, "-vendors.csv")
    assert "_0-categories.csv" in categories
    assert sorted(names).index(categories) < sorted(names).index(taxes)
    assert sorted(names).index(taxes) < sorted(names).index(vendors)
    ctime = {name: (connected.inbound / name).stat().st_ctime_ns for name in names}
    assert ctime[categories] <= ctime[taxes] <= ctime[vendors]
    assert ctime[vendors] <= ctime[named(connected, "-bills.csv")[0]]
    rows = {row["GL Account ID"]: row for row in rows_of(connected, categories)}
    assert set(rows) == {str(i) for i in connected.freshbooks.data.categories}
    assert rows["1005"]["GL Account Name"] == "Software"
    assert rows["1005"]["Parent GL Account ID"] == "901"
    assert rows["901"]["Parent GL Account ID"] == ""
    assert rows["1013"]["Cost of Goods Sold"] == "yes"
    assert {(r["Active"], r["Action"], r["Version"]) for r in rows.values()} == {
        ("yes", "NEW", "1")
    }
    assert "Sent 5 files to Stampli: 14 expense categories, 5 taxes, 6 vendors" in result.stdout
    tax_rows = {row["Tax Code"]: row for row in rows_of(connected, taxes)}
    assert tax_rows["HST"]["Tax Percent"] == "13"
    assert tax_rows["HST"]["Tax Number"] == "123456789RT0001"
    assert (tax_rows["QST"]["Compound"], tax_rows["QST"]["Action"]) == ("yes", "NEW")


def test_bill_lines_carry_the_category_id_the_categories_file_lists(connected: Connected) -> None:
    assert connected.run("push-bills").code == 0
    (categories,) = named(connected, "-categories.csv")
    rows = rows_of(connected, categories)
    listed = {row["GL Account ID"]: row["GL Account Name"] for row in rows}
    lines = rows_of(connected, named(connected, "-bills.csv")[0])
    assert lines
    for line in lines:
        assert line["GL Account ID"] in listed, line["FreshBooks Bill ID"]
        assert line["GL Account"] == listed[line["GL Account ID"]]


def test_synced_again_the_categories_send_nothing_and_a_quiet_run_does_not_ask(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0
    before = set(connected.inbound_files())
    fb = connected.freshbooks
    asked = fb.count("GET", CATEGORIES)
    assert asked == 1
    assert connected.run("push-bills").code == 0  # within the day: not read at all
    assert fb.count("GET", CATEGORIES) == asked
    age_the_last_read(connected, 25)
    assert connected.run("push-bills").code == 0  # read again: nothing changed
    assert fb.count("GET", CATEGORIES) == asked + 1
    assert connected.run("push-bills", "--full").code == 0  # a sweep reads them too
    assert fb.count("GET", CATEGORIES) == asked + 2
    assert fb.count("GET", TAXES) == 3
    assert new_files(connected, before) == []


def test_a_quiet_cron_run_costs_no_request_for_the_categories(connected: Connected) -> None:
    """The quiet-run cost, in requests per run: the categories add one request per
    `sync.coding_lists_hours` (a day), none to the runs in between."""
    fb = connected.freshbooks
    assert connected.run("push-bills").code == 0
    assert connected.run("push-bills").code == 0
    start = len(fb.requests)
    assert connected.run("push-bills").code == 0
    quiet = [r.kind for r in fb.requests[start:] if r.kind != "token"]
    # As before the coding list: the live and deleted newest-first pages of each kind.
    assert sorted(quiet) == ["bill_vendors.list"] * 2 + ["bills.list"] * 2
    age_the_last_read(connected, 25)
    start = len(fb.requests)
    assert connected.run("push-bills").code == 0
    daily = [r.kind for r in fb.requests[start:] if r.kind != "token"]
    assert sorted(daily) == sorted([*quiet, CATEGORIES, TAXES])


def test_a_renamed_archived_or_deleted_category_sends_a_new_version_of_it_alone(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0
    fb = connected.freshbooks
    fb.update_category(1005, category="Software & SaaS")
    fb.update_category(1012, vis_state=2)
    fb.update_category(1010, vis_state=1)
    fb.update_tax(2, amount="15")
    before = set(connected.inbound_files())
    result = connected.run("push-bills", "--full")
    assert result.code == 0, result.stderr
    (taxes,) = named(connected, "-taxes.csv", new_files(connected, before))
    ((tax,),) = [rows_of(connected, taxes)]
    assert (tax["Tax Code"], tax["Tax Percent"], tax["Action"], tax["Version"]) == (
        "HST",
        "15",
        "UPDATE",
        "2",
    )
    (categories,) = named(connected, "-categories.csv", new_files(connected, before))
    rows = {row["GL Account ID"]: row for row in rows_of(connected, categories)}
    assert set(rows) == {"1005", "1012", "1010"}
    assert rows["1005"]["GL Account Name"] == "Software & SaaS"
    assert (rows["1005"]["Action"], rows["1005"]["Version"]) == ("UPDATE", "2")
    assert (rows["1012"]["Active"], rows["1012"]["Action"]) == ("no", "UPDATE")
    assert (rows["1010"]["Active"], rows["1010"]["Action"]) == ("no", "VOID")
    before = set(connected.inbound_files())
    assert connected.run("push-bills", "--full").code == 0
    assert new_files(connected, before) == []


def test_a_login_without_the_coding_scopes_warns_once_each_and_the_bills_still_flow(
    tmp_path: pytest.TempPathFactory, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    freshbooks.realities = parse_realities("coding-scopes-missing")
    connected = connect_quickly(tmp_path / "home", freshbooks, sftp_server)  # type: ignore[operator]
    first = connected.run("push-bills")
    assert first.code == 0, first.stderr
    names = connected.inbound_files()
    assert named(connected, "-categories.csv") == named(connected, "-taxes.csv") == []
    assert len(named(connected, "-vendors.csv")) == 1
    assert len(named(connected, "-bills.csv")) == 1
    warned = first.stderr.splitlines()
    assert len(warned) == 2, first.stderr
    assert "expense categories" in warned[0]
    assert "user:expenses:read" in warned[0]
    assert "taxes" in warned[1]
    assert "user:taxes:read" in warned[1]
    assert all("fbstampli auth login" in line for line in warned)
    asked = freshbooks.count("GET", CATEGORIES)
    assert asked == freshbooks.count("GET", TAXES) == 1
    freshbooks.update_bill(sorted(freshbooks.data.bills)[0], bill_number="INV-RESENT")
    for args in ((), ("--full",)):
        again = connected.run("push-bills", *args)
        assert again.code == 0, again.stderr
        assert again.stderr == ""
    assert freshbooks.count("GET", CATEGORIES) == asked  # the refusal stands for a day
    assert freshbooks.count("GET", TAXES) == asked
    assert len(named(connected, "-bills.csv")) == 2
    assert set(names) < set(connected.inbound_files())
    doctor = connected.run("doctor")
    assert "no coding list without user:expenses:read, user:taxes:read" in doctor.stdout


def test_a_bill_coded_to_a_new_category_brings_the_category_first_within_the_day(
    connected: Connected,
) -> None:
    assert connected.run("push-bills").code == 0
    fb = connected.freshbooks
    category_id = fb.create_category("Cloud Hosting", parent_id=901)
    vendor_id = sorted(fb.data.vendors)[0]
    line = {
        "description": "Hosting",
        "unit_cost": "120",
        "category": (category_id, "Cloud Hosting"),
    }
    bill_id = fb.create_bill(vendor_id, lines=[line])
    before = set(connected.inbound_files())
    result = connected.run("push-bills")  # within the day: read only for the new id
    assert result.code == 0, result.stderr
    sent = new_files(connected, before)
    (categories,) = named(connected, "-categories.csv", sent)
    (bills,) = named(connected, "-bills.csv", sent)
    assert sent.index(categories) < sent.index(bills)
    rows = rows_of(connected, categories)
    assert [(r["GL Account ID"], r["GL Account Name"], r["Action"]) for r in rows] == [
        (str(category_id), "Cloud Hosting", "NEW")
    ]
    (coded,) = [r for r in rows_of(connected, bills) if r["FreshBooks Bill ID"] == str(bill_id)]
    assert coded["GL Account ID"] == str(category_id)
    asked = fb.count("GET", CATEGORIES)
    assert connected.run("push-bills").code == 0  # known now: not read again
    assert fb.count("GET", CATEGORIES) == asked


def test_freshbooks_refusing_the_list_leaves_it_for_later_and_the_bills_flow(
    connected: Connected,
) -> None:
    fb = connected.freshbooks
    fb.fail(f"/accounting/account/{fb.businesses[0].account_id}/expenses/categories", status=400)
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    assert named(connected, "-categories.csv") == []
    assert len(named(connected, "-bills.csv")) == 1
    assert "expense categories not read" in result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    asked = fb.count("GET", CATEGORIES)
    assert connected.run("push-bills").code == 0  # not asked again until the interval is up
    assert fb.count("GET", CATEGORIES) == asked
