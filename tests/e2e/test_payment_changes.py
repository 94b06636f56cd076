"""Bill payments at the cost of the changes, not of the history.

Payments carry no `updated_at`; the incremental pass reads the payments of the
bills that moved (`sync/payments.py`). These tests prove, against the sandbox
and the real CLI, that a run with nothing new reads no payment whatever the
history, that a payment added, edited or deleted between runs reaches the next
run, and that an API where payments do not move their bill is found out by the
full sweep, said once, and answered by listing every payment from then on.
"""

import csv
import io
import json
from pathlib import Path

from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.realities import parse_realities
from fbstampli.sandbox.sftp_server import SftpServer
from tests.e2e.conftest import Connected, connect_quickly
from tests.e2e.test_incremental import resending_on_rename

KINDS = ("bill_vendors", "bills", "bill_payments")


def list_requests(freshbooks: FreshBooksSandbox) -> dict[str, int]:
    return {kind: freshbooks.count("GET", f"{kind}.list") for kind in KINDS}


def new_payment_rows(connected: Connected, before: set[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for name in sorted(set(connected.inbound_files()) - before):
        if name.endswith("-payments.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            rows.extend(csv.DictReader(io.StringIO(text)))
    return rows


def synced(connected: Connected) -> Connected:
    """The first sync done, then counters cleared: what follows is a cron run."""
    first = connected.run("push-bills")
    assert first.code == 0, first.stderr
    connected.freshbooks.reset_counters()
    return connected


def owing_bill(freshbooks: FreshBooksSandbox) -> int:
    data = freshbooks.data
    for bill_id, bill in sorted(data.bills.items()):
        _, _, total, paid = data.bill_totals(bill)
        if bill["vis_state"] == 0 and total > paid + 10:
            return bill_id
    raise AssertionError("no bill owes money")


def live_payment(freshbooks: FreshBooksSandbox) -> int:
    return min(i for i, p in freshbooks.data.payments.items() if p["vis_state"] == 0)


def no_change_cost(tmp_path: Path, scale: int) -> dict[str, int]:
    root = tmp_path / f"sftp-{scale}"
    for folder in ("inbound", "outbound"):
        (root / folder).mkdir(parents=True)
    with FreshBooksSandbox() as freshbooks, SftpServer(root) as sftp:
        freshbooks.seed(vendors=3 * scale, bills=40 * scale, payments=30 * scale, seed=5)
        connected = synced(connect_quickly(tmp_path / f"home-{scale}", freshbooks, sftp))
        result = connected.run("sync")  # what cron runs: push, pull and reconcile
        assert result.code in (0, 1), result.stderr  # 1: reconcile found bills to look at
        cost = list_requests(freshbooks)
        cost["all"] = sum(1 for record in freshbooks.requests if record.kind != "token")
        return cost


def test_no_change_run_costs_the_same_requests_when_the_history_grows_tenfold(
    tmp_path: Path,
) -> None:
    small = no_change_cost(tmp_path, 1)
    large = no_change_cost(tmp_path, 10)
    assert large == small
    assert small["bill_payments"] == 0
    assert small["bills"] <= 2  # the incremental pass only; reconcile read the snapshots


def test_payment_added_between_runs_is_delivered_by_the_next_run(connected: Connected) -> None:
    synced(connected)
    bill_id = owing_bill(connected.freshbooks)
    payment_id = connected.freshbooks.create_payment(bill_id, amount="10.00", note="added")
    before = set(connected.inbound_files())
    assert connected.run("push-bills").code == 0
    rows = new_payment_rows(connected, before)
    assert [(r["FreshBooks Payment ID"], r["Note"]) for r in rows] == [(str(payment_id), "added")]
    # The moved bill's payments, read by `search[billid]`: no listing of the history.
    assert connected.freshbooks.count("GET", "bill_payments.list") == 1


def test_payment_edited_between_runs_is_delivered_by_the_next_run(connected: Connected) -> None:
    synced(connected)
    payment_id = live_payment(connected.freshbooks)
    connected.freshbooks.update_payment(payment_id, note="edited later")
    before = set(connected.inbound_files())
    assert connected.run("push-bills").code == 0
    rows = new_payment_rows(connected, before)
    assert (str(payment_id), "edited later") in {
        (r["FreshBooks Payment ID"], r["Note"]) for r in rows
    }
    connected.freshbooks.reset_counters()
    assert connected.run("push-bills").code == 0
    assert len(new_payment_rows(connected, before)) == len(rows)  # and only once
    # The bill's rows did not change, yet its new `updated_at` was kept: read once per move.
    assert connected.freshbooks.count("GET", "bill_payments.list") == 0


def test_payment_deleted_between_runs_is_reported_by_the_next_run(connected: Connected) -> None:
    synced(connected)
    payment_id = live_payment(connected.freshbooks)
    connected.freshbooks.delete_payment(payment_id)
    result = connected.run("push-bills", "--json")
    assert result.code == 0, result.stderr
    assert f"bill_payment {payment_id} was deleted in FreshBooks" in result.stdout
    again = connected.run("push-bills", "--json")
    assert f"bill_payment {payment_id} was deleted" not in again.stdout  # said once


def test_sweep_disproves_payments_moving_their_bill_and_later_runs_list_them_all(
    connected: Connected,
) -> None:
    synced(connected)
    freshbooks = connected.freshbooks
    freshbooks.realities = parse_realities("payments-still")
    edited = live_payment(freshbooks)
    freshbooks.update_payment(edited, note="unseen by the fast path")
    before = set(connected.inbound_files())
    assert connected.run("push-bills").code == 0
    assert new_payment_rows(connected, before) == []  # the fast path missed it, as predicted
    assert freshbooks.count("GET", "bill_payments.list") == 0

    sweep = connected.run("push-bills", "--full")
    assert sweep.code == 0, sweep.stderr
    assert "bill payments are listed whole from now on" in sweep.stderr + sweep.stdout
    rows = new_payment_rows(connected, before)
    assert {(r["FreshBooks Payment ID"], r["Note"]) for r in rows} == {
        (str(edited), "unseen by the fast path")
    }

    added = freshbooks.create_payment(owing_bill(freshbooks), amount="5.00", note="fallback")
    before = set(connected.inbound_files())
    freshbooks.reset_counters()
    later = connected.run("push-bills")
    assert later.code == 0, later.stderr
    assert "listed whole" not in later.stderr + later.stdout  # said once
    rows = new_payment_rows(connected, before)
    assert [(r["FreshBooks Payment ID"], r["Note"]) for r in rows] == [(str(added), "fallback")]
    live = sum(1 for p in freshbooks.data.payments.values() if p["vis_state"] != 1)
    assert freshbooks.count("GET", "bill_payments.list") == -(-live // 100)

    # Said once in the run, and kept where people look: status (--json too) and doctor.
    fact = json.loads(connected.run("status", "--json").stdout)["freshbooks_behaviour"]
    assert fact["payments_move_bills"]["value"] == "disproved"
    assert "listing every bill payment each run" in fact["payments_move_bills"]["fallback"]
    assert "listing every bill payment each run" in connected.run("-v", "status").stdout
    doctor = connected.run("doctor")
    assert "a payment change moves its bill's updated_at: disproved" in doctor.stdout


def test_sweep_with_nothing_missed_keeps_the_fast_path(connected: Connected) -> None:
    synced(connected)
    freshbooks = connected.freshbooks
    freshbooks.update_payment(live_payment(freshbooks), note="seen by the fast path")
    assert connected.run("push-bills").code == 0
    sweep = connected.run("push-bills", "--full")
    assert sweep.code == 0, sweep.stderr
    assert "listed whole" not in sweep.stderr + sweep.stdout
    freshbooks.reset_counters()
    assert connected.run("push-bills").code == 0
    assert list_requests(freshbooks)["bill_payments"] == 0
    fact = json.loads(connected.run("status", "--json").stdout)["freshbooks_behaviour"]
    assert fact["payments_move_bills"]["value"] == "holds"
    assert fact["payments_move_bills"]["fallback"] is None


def test_a_renamed_vendor_reaches_its_payments_rows_in_the_next_run_not_only_the_sweep(
    connected: Connected, tmp_path: Path
) -> None:
    """With `resend_on_rename`, a payment row's version carries its vendor's name; renaming
    the vendor moves no bill, so the payments are re-rendered from their snapshots. Left to
    the sweep, they would reach Stampli a day late and the sweep would wrongly disprove the
    fast path."""
    env = resending_on_rename(tmp_path)
    first = connected.run("push-bills", env=env)
    assert first.code == 0, first.stderr
    connected.freshbooks.reset_counters()
    payment_id = live_payment(connected.freshbooks)
    bill_id = int(connected.freshbooks.data.payments[payment_id]["billid"])
    vendor_id = int(connected.freshbooks.data.bills[bill_id]["vendorid"])
    connected.freshbooks.update_vendor(vendor_id, vendor_name="Renamed Vendor Ltd.")
    before = set(connected.inbound_files())
    assert connected.run("push-bills", env=env).code == 0
    rows = new_payment_rows(connected, before)
    assert (str(payment_id), "Renamed Vendor Ltd.") in {
        (r["FreshBooks Payment ID"], r["Vendor Name"]) for r in rows
    }
    assert connected.freshbooks.count("GET", "bill_payments.list") == 0  # from the snapshots
    sweep = connected.run("push-bills", "--full", env=env)
    assert sweep.code == 0, sweep.stderr
    assert "listed whole from now on" not in sweep.stderr
    assert len(new_payment_rows(connected, before)) == len(rows)  # nothing sent twice
