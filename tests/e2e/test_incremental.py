"""The incremental pass: a run with nothing new reads one newest-first page per kind.

Bills and vendors are listed newest first and the pass stops at the stored
watermark; bill payments carry no timestamp and are always listed whole.
When FreshBooks ignores the sort, the pass notices and lists everything.
"""

import csv
import io
import math
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected

DEFAULT_TEMPLATE = (
    Path(__file__).resolve().parents[2] / "fbstampli" / "stampli" / "templates" / "default.toml"
)

EXTRA_BILLS = 320  # with the fixture's 30: four pages of bills


@pytest.fixture
def paged(connected: Connected) -> Connected:
    connected.freshbooks.seed(vendors=3, bills=EXTRA_BILLS, payments=0, seed=11)
    first = connected.run("push-bills")
    assert first.code == 0, first.stderr
    connected.freshbooks.reset_counters()
    return connected


def resending_on_rename(tmp_path: Path) -> dict[str, str]:
    """A template whose bill and payment versions include their vendor's name."""
    template = tmp_path / "resend-on-rename.toml"
    text = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    template.write_text(text.replace("resend_on_rename = false", "resend_on_rename = true"))
    return {"FBSTAMPLI_STAMPLI_TEMPLATE": str(template)}


def bill_pages(connected: Connected) -> int:
    live = sum(1 for b in connected.freshbooks.data.bills.values() if b["vis_state"] != 1)
    return math.ceil(live / 100)


def delivered_bill_rows(connected: Connected, before: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in sorted(set(connected.inbound_files()) - before):
        if name.endswith("-bills.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            rows.extend(csv.DictReader(io.StringIO(text)))
    return rows


def oldest_bill(connected: Connected) -> int:
    bills = connected.freshbooks.data.bills
    return min((b for b in bills.values() if b["vis_state"] != 1), key=lambda b: b["updated_at"])[
        "id"
    ]


def test_no_change_run_reads_one_page_of_bills_and_of_vendors_and_of_each_deleted(
    paged: Connected,
) -> None:
    assert bill_pages(paged) > 1
    before = paged.inbound_files()
    result = paged.run("push-bills")
    assert result.code == 0, result.stderr
    assert paged.inbound_files() == before
    # One newest-first page of the live list and one of the deleted list, per kind.
    assert paged.freshbooks.count("GET", "bills.list") == 2
    assert paged.freshbooks.count("GET", "bill_vendors.list") == 2


def test_change_to_the_oldest_bill_is_found_by_the_incremental_pass(paged: Connected) -> None:
    bill_id = oldest_bill(paged)
    paged.freshbooks.update_bill(bill_id, bill_number="MOVED-UP")
    before = set(paged.inbound_files())
    assert paged.run("push-bills").code == 0
    rows = delivered_bill_rows(paged, before)
    assert {row["FreshBooks Bill ID"] for row in rows} == {str(bill_id)}
    assert {row["Invoice Number"] for row in rows} == {"MOVED-UP"}
    assert paged.freshbooks.count("GET", "bills.list") == 2  # live page, deleted page


def test_api_ignoring_the_sort_falls_back_to_listing_every_bill(paged: Connected) -> None:
    paged.freshbooks.honour_sort = False
    bill_id = oldest_bill(paged)
    paged.freshbooks.update_bill(bill_id, bill_number="UNSORTED")
    before = set(paged.inbound_files())
    assert paged.run("push-bills").code == 0
    rows = delivered_bill_rows(paged, before)
    assert {row["Invoice Number"] for row in rows} == {"UNSORTED"}
    # Page 1 shows the order untrustworthy; the rest of the same listing completes it.
    # The deleted list is then read whole too (one page here).
    assert paged.freshbooks.count("GET", "bills.list") == bill_pages(paged) + 1


def test_renamed_vendor_resends_its_bills_from_their_snapshots_when_the_template_asks(
    paged: Connected, tmp_path: Path
) -> None:
    env = resending_on_rename(tmp_path)
    # A changed template changes each object's version once: settle it before the rename.
    assert paged.run("push-bills", "--full", env=env).code == 0
    paged.freshbooks.reset_counters()
    data = paged.freshbooks.data
    bill = data.bills[oldest_bill(paged)]
    vendor_id = bill["vendorid"]
    paged.freshbooks.update_vendor(vendor_id, vendor_name="Renamed Supplies Ltd.")
    before = set(paged.inbound_files())
    assert paged.run("push-bills", env=env).code == 0
    rows = delivered_bill_rows(paged, before)
    expected = {
        str(b["id"])
        for b in data.bills.values()
        if b["vendorid"] == vendor_id and b["vis_state"] != 1
    }
    assert {row["FreshBooks Bill ID"] for row in rows} == expected
    assert {row["Vendor Name"] for row in rows} == {"Renamed Supplies Ltd."}
    assert paged.freshbooks.count("GET", "bills.list") == 2
    assert paged.run("push-bills", env=env).code == 0
    assert delivered_bill_rows(paged, before) == rows  # and only once


def test_full_sweep_still_lists_everything(paged: Connected) -> None:
    assert paged.run("push-bills", "--full").code == 0
    # Every page of live bills, the one page of deleted bills (there are none), and the
    # two small sorted probes that re-check the sort against the true newest and oldest.
    assert paged.freshbooks.count("GET", "bills.list") == bill_pages(paged) + 1 + 2
