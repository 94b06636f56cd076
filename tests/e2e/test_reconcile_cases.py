"""Acceptance of #28: hand-written Stampli exports against a sandbox FreshBooks set up to match,
pulled over real SFTP and reconciled; every bill's outcome and its one-sentence why as an AP
lead reads them.

The cases live in tests/data/reconcile_cases/: `freshbooks.csv` says how the sandbox is set up
(each bill, its payments, and what happens to it after fbstampli first sent it: an edit of its
total or a deletion), the three `stampli_*.csv` are Stampli's capture, approval and payment
exports as Stampli writes them, and `expected.csv` each bill's outcome and why (`{today}`
stands for the day the test runs: when a bill was deleted or a version reached Stampli).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fbstampli.models.outcome import Outcome
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from tests.e2e.conftest import Connected, connect_quickly

CASES = Path(__file__).parents[1] / "data" / "reconcile_cases"
# The settings the expected outcomes are judged by: a go-live date before the cases' payments
# (one bill paid earlier is history) and the tolerances. (`not_captured` needs a delivery
# older than an hour: tests/unit/test_reconcile.py has it.)
SETTINGS = {
    "FBSTAMPLI_RECONCILE_SINCE": "2026-01-01",
    "FBSTAMPLI_RECONCILE_TOLERANCE_AMOUNT": "0.05",
    "FBSTAMPLI_RECONCILE_TOLERANCE_PERCENT": "0.1",
    "FBSTAMPLI_RECONCILE_PAYMENT_WINDOW_DAYS": "5",
}


def read(name: str) -> list[dict[str, str]]:
    with (CASES / name).open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def line(row: dict[str, str], total: str) -> list[dict[str, str]]:
    return [{"description": row["case"], "quantity": "1", "unit_cost": total}]


def set_up(sandbox: FreshBooksSandbox, rows: list[dict[str, str]]) -> None:
    """Vendors and bills with the ids the exports name (an empty sandbox counts from 1)."""
    vendors: dict[str, int] = {}
    for row in rows:
        if row["vendor"] not in vendors:
            vendors[row["vendor"]] = sandbox.create_vendor(
                row["vendor"], currency_code=row["currency"]
            )
        bill_id = sandbox.create_bill(
            vendors[row["vendor"]],
            bill_number=row["invoice_number"],
            issue_date=row["issue_date"],
            currency_code=row["currency"],
            lines=line(row, row["total"]),
        )
        assert bill_id == int(row["bill"]), "the exports name bills by these ids"
        for payment in filter(None, row["payments"].split("|")):
            paid, _, note = payment.partition("#")
            amount, _, paid_date = paid.partition("@")
            sandbox.create_payment(bill_id, amount=amount, paid_date=paid_date, note=note)


def change_after_sending(sandbox: FreshBooksSandbox, rows: list[dict[str, str]]) -> None:
    for row in rows:
        then = row["then"]
        if then.startswith("total "):
            sandbox.update_bill(int(row["bill"]), lines=line(row, then.split()[1]))
        elif then == "delete":
            sandbox.delete_bill(int(row["bill"]))


@pytest.fixture
def casebook(tmp_path: Path, sftp_server: SftpServer) -> Iterator[Connected]:
    with FreshBooksSandbox() as sandbox:
        set_up(sandbox, read("freshbooks.csv"))
        yield connect_quickly(tmp_path / "home", sandbox, sftp_server)


def reconciled(connected: Connected) -> dict[str, dict[str, Any]]:
    """The report's rows by bill id (by Stampli invoice id for a row naming no bill)."""
    report = connected.run("reconcile", "--format", "json", env=SETTINGS)
    assert report.code == 0, report.stderr
    return {
        str(item["fb_bill_id"] or item["stampli_invoice_id"]): item
        for item in json.loads(report.stdout)["items"]
    }


def test_hand_written_stampli_exports_give_each_bill_its_outcome_and_why(
    casebook: Connected,
) -> None:
    rows = read("freshbooks.csv")
    assert casebook.run("push-bills").code == 0
    change_after_sending(casebook.freshbooks, rows)
    assert casebook.run("push-bills").code == 0
    for export in sorted(CASES.glob("stampli_*.csv")):
        shutil.copy(export, casebook.sftp.root / "outbound" / export.name)
    pulled = casebook.run("pull-stampli", "--now")
    assert pulled.code == 0, pulled.stderr
    items = reconciled(casebook)
    today = datetime.now(UTC).date().isoformat()
    expected = read("expected.csv")
    got = [
        (row["key"], items[row["key"]]["outcome"], items[row["key"]]["why"])
        for row in expected
        if row["key"] in items
    ]
    wanted = [
        (row["key"], row["outcome"], row["why"].replace("{today}", today)) for row in expected
    ]
    assert got == wanted
    assert sorted(items) == sorted(row["key"] for row in expected)  # nothing else reported
    assert len(rows) >= 30
    # Every outcome appears among the cases but those that take time or a person.
    assert {row["outcome"] for row in expected} == {o.value for o in Outcome} - {
        "acknowledged",
        "not_captured",
    }


def test_the_report_shows_the_open_balance_on_each_side(casebook: Connected) -> None:
    assert casebook.run("push-bills").code == 0
    export = CASES / "stampli_payment_20260315.csv"
    shutil.copy(export, casebook.sftp.root / "outbound" / export.name)
    assert casebook.run("pull-stampli", "--now").code == 0
    items = reconciled(casebook)
    half_paid, stampli_only = items["5"], items["11"]
    assert (half_paid["bill_total"], half_paid["open_balance"]) == ("1948.50", "1048.50")
    assert half_paid["stampli_open_balance"] == "1048.50"
    assert (stampli_only["open_balance"], stampli_only["stampli_open_balance"]) == (
        "300.00",
        "0.00",
    )
