"""A payment deleted in FreshBooks after delivery stops counting in the next cron run,
whichever way the run lists payments (issue #24, item 8).

The fast path reads the moved bills' payments by `search[billid]`; a bulk change lists
every payment; a FreshBooks that ignores `search[billid]` (the sandbox's
`billid-ignored` reality) is found out in the run and answered by listing every payment,
as every later run then does. Under each, one cron `sync` after the deletion must leave
reconcile counting the payment no more, and Stampli told as for any deleted payment
(issue #27: a VOID row of the next version).
"""

from __future__ import annotations

import csv
import io
import json

from fbstampli.sandbox.realities import parse_realities
from tests.e2e.conftest import Connected
from tests.e2e.test_baseline import outcomes

ALL_BILL_PAYMENTS = "listed whole from now on"


def cron_sync(connected: Connected) -> str:
    """One cron run of `sync`; 1 is fine (reconcile found bills to look at). Returns its
    stderr and stdout."""
    result = connected.run("sync")
    assert result.code in (0, 1), result.stderr
    return result.stderr + result.stdout


def paid_today(connected: Connected) -> tuple[int, int]:
    """After the first sync, FreshBooks pays a bill fbstampli sent; the next sync sends it."""
    cron_sync(connected)
    fb = connected.freshbooks
    paid = {int(p["billid"]) for p in fb.data.payments.values() if p["vis_state"] != 1}
    bill_id = min(i for i, b in fb.data.bills.items() if b["vis_state"] == 0 and i not in paid)
    payment_id = fb.create_payment(bill_id, amount="10.00")
    cron_sync(connected)
    row = outcomes(connected)[bill_id]
    assert (row["outcome"], row["paid_in_freshbooks"]) == ("paid_in_freshbooks_only", "10.00 USD")
    return bill_id, payment_id


def payment_rows(connected: Connected, before: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in sorted(set(connected.inbound_files()) - before):
        if name.endswith("-payments.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            rows.extend(csv.DictReader(io.StringIO(text)))
    return rows


def assert_stops_counting(connected: Connected, bill_id: int, payment_id: int) -> str:
    """Delete the payment, run cron's `sync` once: reconcile no longer counts it, and
    Stampli got its VOID. Returns what the run said."""
    connected.freshbooks.delete_payment(payment_id)
    before = set(connected.inbound_files())
    said = cron_sync(connected)
    row = outcomes(connected)[bill_id]
    assert row["outcome"] != "paid_in_freshbooks_only", row
    assert not row["paid_in_freshbooks"], row
    voided = [
        (r["FreshBooks Payment ID"], r["Action"], r["Version"])
        for r in payment_rows(connected, before)
    ]
    assert voided == [(str(payment_id), "VOID", "2")]
    status = json.loads(connected.run("status", "--json").stdout)
    assert status["deliveries"]["deleted"]["bill_payment"] == {"deleted": 1, "voided": 1}
    return said


def test_deleted_payment_stops_counting_after_one_sync_on_the_filtered_path(
    connected: Connected,
) -> None:
    bill_id, payment_id = paid_today(connected)
    connected.freshbooks.reset_counters()
    said = assert_stops_counting(connected, bill_id, payment_id)
    assert ALL_BILL_PAYMENTS not in said
    # The moved bill's payments, then its deleted ones: no listing of every payment.
    assert connected.freshbooks.count("GET", "bill_payments.list") == 2


def test_deleted_payment_stops_counting_after_one_sync_on_the_bulk_path(
    connected: Connected,
) -> None:
    """More than 100 bills moved in one run: every payment is listed once, and the deleted
    payment is found missing from it even on a bill that did not move."""
    fb = connected.freshbooks
    vendor_id = min(fb.data.vendors)
    for _ in range(101):
        fb.create_bill(vendor_id)
    bill_id, payment_id = paid_today(connected)
    others = [i for i, b in sorted(fb.data.bills.items()) if b["vis_state"] == 0 and i != bill_id]
    for other in others[:101]:
        fb.update_bill(other, notes="bulk edit")
    fb.data.payments_move_bill = False  # the deletion moves nothing: only the listing shows it
    assert_stops_counting(connected, bill_id, payment_id)


def test_deleted_payment_stops_counting_in_the_run_that_finds_search_billid_ignored(
    connected: Connected,
) -> None:
    bill_id, payment_id = paid_today(connected)
    connected.freshbooks.realities = parse_realities("billid-ignored")
    said = assert_stops_counting(connected, bill_id, payment_id)
    assert ALL_BILL_PAYMENTS in said


def test_deleted_payment_stops_counting_after_one_sync_once_every_payment_is_listed(
    connected: Connected,
) -> None:
    """The fallback: every payment listed each run. With nothing deleted it costs no request
    more than the listing; a deletion costs the look-up among the deleted."""
    connected.freshbooks.realities = parse_realities("billid-ignored")
    bill_id, payment_id = paid_today(connected)  # this run learns the filter is ignored
    fb = connected.freshbooks
    fb.reset_counters()
    assert ALL_BILL_PAYMENTS not in cron_sync(connected)
    live = sum(1 for p in fb.data.payments.values() if p["vis_state"] != 1)
    assert fb.count("GET", "bill_payments.list") == -(-live // 100)  # none vanished: no more
    said = assert_stops_counting(connected, bill_id, payment_id)
    assert ALL_BILL_PAYMENTS not in said  # said once, when it was learnt
