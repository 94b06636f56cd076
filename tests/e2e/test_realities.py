"""The whole push under each way the real FreshBooks may differ from the notes (issue 15).

Each reality (`fbstampli.sandbox.realities`) is acted out by the sandbox, alone
and all at once, through a first sync, edits to old and new bills, a vendor
rename, webhook events, deletions and a full sweep. After every run Stampli's
inbound folder must hold exactly what FreshBooks holds: every change arrives in
the run that first could see it (not a day later at the sweep), no version
twice, and no bill version without its lines. A fallback is announced once.
"""

import csv
import io
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from fbstampli.clock import SystemClock
from fbstampli.config import load_settings
from fbstampli.freshbooks.oauth import authorize_url
from fbstampli.models.behaviour import Fact
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.realities import ALL, parse_realities
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services.sandbox import sandbox_config
from fbstampli.store import open_state
from fbstampli.store.api_facts import load_facts
from fbstampli.store.events import enqueue_event
from tests.e2e.conftest import Connected, connect_quickly
from tests.support.cli import one_line, run

COLUMNS = {
    "-vendors.csv": ("vendor", "FreshBooks Vendor ID"),
    "-bills.csv": ("bill", "FreshBooks Bill ID"),
    "-payments.csv": ("payment", "FreshBooks Payment ID"),
}
EXPECTED = {
    "sort.bills": "honoured",
    "sort.bill_vendors": "honoured",
    "vendor_ids_filter": "honoured",
    "list_lines": "included",
    "vendor_times": "UTC",
    "empty_pages": "1",
}
LEARNT: dict[str, dict[str, str]] = {
    "none": EXPECTED,
    "sort-ignored": {**EXPECTED, "sort.bills": "ignored", "sort.bill_vendors": "ignored"},
    "sort-rejected": {**EXPECTED, "sort.bills": "rejected", "sort.bill_vendors": "rejected"},
    "vendor-ids-ignored": {**EXPECTED, "vendor_ids_filter": "ignored"},
    "vendor-ids-rejected": {**EXPECTED, "vendor_ids_filter": "rejected"},
    "lines-omitted": {**EXPECTED, "list_lines": "omitted"},
    "vendor-times-ny": {**EXPECTED, "vendor_times": "America/New_York"},
    "empty-pages-zero": {**EXPECTED, "empty_pages": "0"},
    "billid-ignored": EXPECTED,
}
LEARNT["all"] = {  # a refusal hides whether the parameter would have been ignored
    "sort.bills": "rejected",
    "sort.bill_vendors": "rejected",
    "vendor_ids_filter": "rejected",
    "list_lines": "omitted",
    "vendor_times": "America/New_York",
    "empty_pages": "0",
}
Versions = dict[tuple[str, str], list[tuple[tuple[str, str], ...]]]


def versions(connected: Connected) -> Versions:
    """(kind, id) -> each version delivered, in delivery order; a version is its rows."""
    seen: Versions = defaultdict(list)
    for name in connected.inbound_files():  # names sort in delivery order
        for suffix, (kind, column) in COLUMNS.items():
            if not name.endswith(suffix):
                continue
            text = (connected.inbound / name).read_text(encoding="utf-8")
            grouped: dict[str, list[tuple[tuple[str, str], ...]]] = defaultdict(list)
            for row in csv.DictReader(io.StringIO(text)):
                grouped[row[column]].append(tuple(sorted(row.items())))
            for fb_id, rows in grouped.items():
                seen[(kind, fb_id)].append(tuple(sorted(rows)))  # type: ignore[arg-type]
    return seen


def assert_in_step(connected: Connected) -> None:
    """Stampli holds FreshBooks' current version of everything live, each version once."""
    seen = versions(connected)
    duplicated = [key for key, each in seen.items() if len(each) != len(set(each))]
    assert duplicated == [], "a version was delivered twice"
    data = connected.freshbooks.data
    for bill_id, bill in data.bills.items():
        for version in seen.get(("bill", str(bill_id)), []):
            rows = [dict(row) for row in version]
            assert all(row["Line Description"] for row in rows), f"bill {bill_id} without lines"
        if bill["vis_state"] == 1:
            continue
        last = [dict(row) for row in seen[("bill", str(bill_id))][-1]]
        vendor = data.vendors[bill["vendorid"]]
        assert {row["Invoice Number"] for row in last} == {bill["bill_number"]}, bill_id
        # The vendor's name as it was at the bill's own last change: a rename is the
        # vendor's version, not the bill's (issue #27); the vendor id never changes.
        assert {row["FreshBooks Vendor ID"] for row in last} == {str(bill["vendorid"])}, bill_id
        assert sorted(row["Line Description"] for row in last) == sorted(
            line["description"] for line in bill["lines"]
        ), bill_id
    for vendor_id, vendor in data.vendors.items():
        if vendor["vis_state"] != 1:
            last = [dict(row) for row in seen[("vendor", str(vendor_id))][-1]]
            assert {row["Vendor Name"] for row in last} == {vendor["vendor_name"]}
            assert {row["City"] for row in last} == {vendor["city"]}
    for payment_id, payment in data.payments.items():
        if payment["vis_state"] != 1:
            assert ("payment", str(payment_id)) in seen


def learnt_by(connected: Connected) -> dict[str, Fact]:
    """What the runs learnt, as kept in the state (`status --json` shows the same)."""
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        return load_facts(store)
    finally:
        store.close()


def webhook(connected: Connected, name: str, object_id: int) -> None:
    """What the listener does with a verified event: queue it for the next run."""
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        enqueue_event(store, name, object_id, connected.freshbooks.account_id)
    finally:
        store.close()


def push(connected: Connected, *args: str) -> str:
    result = connected.run("push-bills", *args)
    assert result.code == 0, result.stderr
    assert_in_step(connected)
    return result.stderr


def live(records: dict) -> list[int]:
    return sorted(i for i, record in records.items() if record["vis_state"] != 1)


@pytest.mark.parametrize("reality", ["none", *ALL, "all"])
def test_every_change_arrives_once_and_whole_whatever_freshbooks_does(
    connected: Connected, reality: str
) -> None:
    fb = connected.freshbooks
    fb.realities = parse_realities(reality)
    fb.seed(vendors=2, bills=120, payments=0, seed=5)  # two pages: an old bill is off page 1
    # History before the first sync, as a real account has: an old bill edited since.
    oldest = live(fb.data.bills)[0]
    fb.update_bill(oldest, bill_number="EDITED-BEFORE")
    said = [push(connected)]

    bills = live(fb.data.bills)
    fb.update_bill(bills[1], lines=[{"description": "Old bill, new line", "unit_cost": "5"}])
    fb.update_bill(bills[-1], bill_number="NEWEST-EDITED")
    vendor_id = fb.data.bills[bills[2]]["vendorid"]
    fb.update_vendor(vendor_id, vendor_name="Renamed Vendor Ltd.")
    fb.create_bill(vendor_id, lines=[{"description": "Brand new", "unit_cost": "7"}])
    said.append(push(connected))

    # Webhook events name what changed; the run fetches them by id.
    other_vendor = next(v for v in live(fb.data.vendors) if v != vendor_id)
    fb.update_vendor(other_vendor, city="Webhookville")
    webhook(connected, "bill_vendor.update", other_vendor)
    # FreshBooks may name an object whose change the run has seen already (a retry):
    # it is fetched by id, through the vendor ids filter.
    unchanged = next(v for v in live(fb.data.vendors) if v not in (vendor_id, other_vendor))
    webhook(connected, "bill_vendor.update", unchanged)
    paid = bills[3]
    fb.create_payment(paid, amount="1.00")
    webhook(connected, "bill.update", paid)
    said.append(push(connected))

    fb.delete_bill(bills[4])
    payment = live(fb.data.payments)[0]
    fb.delete_payment(payment)
    said.append(push(connected, "--full"))  # each push also checked no version came twice

    seen = {name: fact.value for name, fact in learnt_by(connected).items()}
    for name, value in LEARNT[reality].items():
        assert seen[name] == value, (name, seen)
    warnings = "".join(said)
    for fallback in ("sort by updated_at (bills)", "bill lines in list responses"):
        assert warnings.count(f"{fallback}: ") <= 1, warnings
    if reality == "none":
        assert "from now on" not in warnings
    else:
        assert "from now on" in warnings or reality == "empty-pages-zero"


def test_a_scope_the_app_lacks_fails_consent_with_the_scopes_to_enable(
    tmp_path: Path, freshbooks: FreshBooksSandbox
) -> None:
    freshbooks.realities = parse_realities("scope-missing")
    home = tmp_path / "home"
    assert run(home, "init", "--key-source", "file").code == 0
    (home / "config.toml").write_text(sandbox_config(freshbooks, business="sandbox"))
    settings = load_settings({}, {}, home / "config.toml").freshbooks
    answer = requests.get(authorize_url(settings, "st"), allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    login = run(home, "auth", "login", "--code", answer.headers["Location"])
    assert login.code == 3, login.stderr
    assert one_line(login.stderr)
    assert "enable user:profile:read user:bills:read user:bill_vendors:read" in login.stderr
    assert "on your FreshBooks app" in login.stderr


def test_a_grant_without_a_read_scope_stops_sync_naming_the_scope(
    tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    freshbooks.realities = parse_realities("scope-missing")  # the grant lacks vendors
    connected = connect_quickly(tmp_path / "home", freshbooks, sftp_server)
    result = connected.run("push-bills")
    assert result.code == 3, result.stderr
    assert one_line(result.stderr)
    assert "lacks the scope user:bill_vendors:read; enable it on your FreshBooks app" in (
        result.stderr
    )
    assert connected.inbound_files() == []


def test_the_sandbox_refuses_a_reality_it_does_not_know(tmp_path: Path) -> None:
    result = run(tmp_path, "sandbox", "freshbooks", "--port", "0", "--reality", "sort-sideways")
    assert result.code == 2, result.output
    assert one_line(result.stderr)
    assert "--reality 'sort-sideways' is not one of: sort-ignored" in result.stderr
