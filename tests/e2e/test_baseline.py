"""The go-live baseline and `reconcile acknowledge`: what FreshBooks paid before fbstampli
sent a bill is history, reported and never attention; an accountant's reason quiets one
bill's outcome until that bill's facts change."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.services import sync
from tests.e2e.conftest import Connected, connect_quickly
from tests.support.cli import one_line


def outcomes(connected: Connected, env: dict[str, str] | None = None) -> dict[int, dict[str, Any]]:
    """`reconcile`'s rows by bill id (in this process: the report's own tests use the CLI)."""
    rows: dict[int, dict[str, Any]] = {}

    def keep(report: RunReport, items: Iterator[Mapping[str, Any]]) -> None:
        rows.update((item["fb_bill_id"], dict(item)) for item in items)

    sync.reconcile(Options(home=connected.home, env=env or {}), keep)
    return rows


def paid_bills(freshbooks: FreshBooksSandbox) -> set[int]:
    live = {i for i, bill in freshbooks.data.bills.items() if bill["vis_state"] != 1}
    return {
        int(payment["billid"])
        for payment in freshbooks.data.payments.values()
        if payment["vis_state"] != 1 and int(payment["billid"]) in live
    }


@pytest.fixture
def history(tmp_path: Path, sftp_server: SftpServer) -> Iterator[Connected]:
    """An account with years of bills, hundreds of them paid long before go-live."""
    with FreshBooksSandbox() as sandbox:
        sandbox.seed(vendors=20, bills=500, payments=260, seed=11)
        yield connect_quickly(tmp_path / "home", sandbox, sftp_server)


@pytest.mark.slow
def test_a_first_sync_of_a_history_with_many_paid_bills_leaves_none_needing_attention(
    history: Connected,
) -> None:
    paid = paid_bills(history.freshbooks)
    assert len(paid) >= 200  # the account had 222
    report = sync.sync(Options(home=history.home, env={}))
    assert not report.problems, report.problems
    assert report.counts.get("reconcile.history") == len(paid)
    assert not report.attention
    rows = outcomes(history)
    assert {bill for bill, row in rows.items() if row["outcome"] == "history"} == paid
    status = history.run("status")
    assert status.code == 0, status.stdout


def first_sync(connected: Connected) -> None:
    report = sync.sync(Options(home=connected.home, env={}))
    assert not report.problems, report.problems


def test_seeded_payments_from_before_go_live_are_history_and_say_so(
    connected: Connected,
) -> None:
    first_sync(connected)
    rows = outcomes(connected)
    paid = paid_bills(connected.freshbooks)
    assert paid
    for bill_id in paid:
        assert rows[bill_id]["outcome"] == "history", rows[bill_id]
        assert "before fbstampli first sent it on" in rows[bill_id]["detail"]
        assert rows[bill_id]["why"].startswith("Paid in FreshBooks before it was sent")
    audit = json.loads(connected.run("audit", "--format", "json").stdout)
    assert not [row for row in audit if row["action"] == "reconcile_history"]  # never alarmed


def pay_today(connected: Connected) -> int:
    """FreshBooks pays, today, a bill fbstampli sent: not history, Stampli should know."""
    unpaid = sorted(set(connected.freshbooks.data.bills) - paid_bills(connected.freshbooks))
    bill_id = next(i for i in unpaid if connected.freshbooks.data.bills[i]["vis_state"] == 0)
    connected.freshbooks.create_payment(bill_id, amount="10.00")
    first_sync(connected)
    return bill_id


def test_a_bill_paid_in_freshbooks_after_go_live_still_needs_attention(
    connected: Connected,
) -> None:
    first_sync(connected)
    bill_id = pay_today(connected)
    assert outcomes(connected)[bill_id]["outcome"] == "paid_in_freshbooks_only"
    assert connected.run("status").code == 1


def test_reconcile_since_makes_what_was_paid_before_that_day_history(
    connected: Connected,
) -> None:
    first_sync(connected)
    bill_id = pay_today(connected)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    env = {"FBSTAMPLI_RECONCILE_SINCE": tomorrow}
    row = outcomes(connected, env=env)[bill_id]
    assert row["outcome"] == "history"
    assert f"before reconcile.since {tomorrow}" in row["detail"]
    bad = connected.run("reconcile", env={"FBSTAMPLI_RECONCILE_SINCE": "last year"})
    assert bad.code == 2
    assert one_line(bad.stderr)


@pytest.mark.slow
def test_acknowledge_quiets_a_bill_until_its_facts_change(connected: Connected) -> None:
    first_sync(connected)
    bill_id = pay_today(connected)
    reason = "paid by wire from the old account; Stampli not involved"
    result = connected.run("reconcile", "acknowledge", "--bill", str(bill_id), "--reason", reason)
    assert result.code == 0, result.stderr
    assert connected.run("status").code == 0  # at once, before any reconcile
    assert outcomes(connected)[bill_id]["outcome"] == "acknowledged"  # a reconcile keeps it
    audit = json.loads(connected.run("audit", "--bill", str(bill_id), "--format", "json").stdout)
    said = [row["detail"] for row in audit if row["action"] == "reconcile_acknowledged"]
    assert said == [f"paid_in_freshbooks_only acknowledged: {reason}"]

    connected.freshbooks.create_payment(bill_id, amount="5.00")  # the facts change
    first_sync(connected)
    row = outcomes(connected)[bill_id]
    assert row["outcome"] == "paid_in_freshbooks_only"
    assert "15.00" in row["detail"]
    assert connected.run("status").code == 1


def test_acknowledge_refuses_what_it_cannot_record_in_one_line(connected: Connected) -> None:
    first_sync(connected)
    paid = min(paid_bills(connected.freshbooks))
    cases = [
        (["--bill", "999999", "--reason", "x"], "no reconcile outcome"),
        (["--bill", str(paid), "--reason", "x"], "needs no attention (history)"),
        (["--bill", str(paid), "--reason", "   "], "--reason must say why"),
    ]
    for args, said in cases:
        result = connected.run("reconcile", "acknowledge", *args)
        assert result.code == 2, result.stderr
        assert one_line(result.stderr)
        assert said in result.stderr
