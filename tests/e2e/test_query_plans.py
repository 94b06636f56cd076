"""A cron run's cost follows the changes: no statement it sends reads a whole table that
grows with the history (every delivery, snapshot, Stampli record, outcome or audit line).

A history is made first (a first sync, a sweep, Stampli's exports read and reconciled).
Then every statement of the 15-minute runs that follow is recorded as sent (a quiet sync;
a sync after a vendor rename, a new payment and a new Stampli export; a retry) and SQLite
is asked for its plan. A full scan, a covering-index scan, a search on a kind or a status
alone, or an open-ended range on an index fails the test and names the statement: the
usual cause is a missing index, or SQLite choosing a narrower one without statistics (as
the delivery queue once did, reading every bill delivery ever made to find the next
thousand pending ones). The daily full passes (push's sweep, reconcile's every-bill pass)
read everything by design and are not checked here.
"""

import re
from decimal import Decimal
from typing import Any

import pytest

import fbstampli.store as store_module
from fbstampli.options import Options
from fbstampli.runtime import open_runtime
from fbstampli.sandbox.stampli import StampliSimulator
from fbstampli.services import sync as services
from tests.e2e.conftest import Connected

# Tables that grow with the account's history.
GROWING = {
    "deliveries",
    "source_objects",
    "stampli_records",
    "stampli_files",
    "audit",
    "batches",
    "reconcile_outcomes",
}
# Whole reads a run may make on purpose, each bounded by something other than the history.
ALLOWED = {
    # LIMIT 1: stops at the first row.
    "SELECT 1 FROM source_objects LIMIT 1",
    # The open batches only (planned to rename_sent): a delivered batch is never open again.
    "SELECT * FROM batches WHERE state IN (?, ?, ?, ?) ORDER BY file_name",
    # The report's counts: one pass over a narrow index (outcome, recheck time) of one entry
    # per bill, never the table; about 10 ms per 100,000 bills.
    "SELECT outcome, count(*) AS n FROM reconcile_outcomes GROUP BY outcome",
    # The held deliveries only (store/held.py): records that could not be written, a
    # handful, never the delivered history.
    "SELECT count(*) AS n FROM deliveries WHERE status = 'held'",
    "UPDATE deliveries SET status = ?, updated_at = ? WHERE status = 'held'",
    # The coding lists' entries (store/coding.py): an account's expense categories or taxes,
    # tens of rows of their own kind, never the bills' history (issue 26).
    "SELECT payload FROM source_objects WHERE kind = ? AND vis_state != ? ORDER BY fb_id",
    # The marker's last delivered batch (store/identity.py): max(rowid) on the (state, rowid)
    # index is one seek (SQLite's min/max optimisation; 0.006 ms over 2,000,000 batches).
    "SELECT coalesce(max(id), 0) AS last FROM batches WHERE state = ?",
}
STEP = re.compile(r"(SCAN|SEARCH) (\w+)(.*)$")
# A search on a kind or a status alone reads every row of that kind: a scan in disguise.
NARROW_ONLY = re.compile(r"INDEX \w+ \((?:kind|status|state|outcome)=\?\)$")
# `x>?` with no upper bound walks the index to its end; cursors excepted: a rowid or a
# `seen_at` starts at the last row or moment seen, and what lies after it is the changes.
OPEN_RANGE = re.compile(r"INDEX \w+ \((?!rowid|seen_at)\w+[<>]\?\)$")


def tables_by_alias(sql: str) -> dict[str, str]:
    aliases = {table: table for table in GROWING}
    for table, alias in re.findall(r"(?:FROM|JOIN) (\w+) AS (\w+)", sql):
        aliases[alias] = table
    return aliases


def whole_reads(sql: str, plan: list[str]) -> list[str]:
    aliases = tables_by_alias(sql)
    found = []
    for step in plan:
        match = STEP.match(step)
        if match is None or aliases.get(match.group(2)) not in GROWING:
            continue
        how, rest = match.group(1), match.group(3)
        if how == "SCAN" or NARROW_ONLY.search(rest) or OPEN_RANGE.search(rest):
            found.append(step)
    return found


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name in ("execute", "execute_many", "query", "iterate"):
        original = getattr(store_module.Store, name)

        def recorded(self: Any, sql: str, params: Any = (), _original: Any = original) -> Any:
            if params != []:  # execute_many's rows: the first row stands for them all
                one = params[0] if isinstance(params, list) else params
                seen.setdefault(" ".join(sql.split()), one)
            return _original(self, sql, params)

        monkeypatch.setattr(store_module.Store, name, recorded)
    return seen


def test_the_plan_check_sees_a_scan_through_an_alias_and_an_open_range() -> None:
    sql = "SELECT r.id FROM stampli_records AS r WHERE r.fb_bill_id > ?"
    assert whole_reads(sql, ["SEARCH r USING COVERING INDEX stampli_records_bill (fb_bill_id>?)"])
    assert whole_reads(sql, ["SCAN r USING COVERING INDEX stampli_records_bill"])
    assert not whole_reads(sql, ["SEARCH r USING INTEGER PRIMARY KEY (rowid>?)"])
    assert not whole_reads(sql, ["SEARCH r USING INDEX stampli_records_bill (fb_bill_id=?)"])


def test_no_statement_of_a_cron_run_reads_a_table_that_grows_with_the_history(
    connected: Connected, statements: dict[str, Any]
) -> None:
    options = Options(home=connected.home, env={})
    fb = connected.freshbooks
    stampli = StampliSimulator(connected.sftp.root)
    # The history: a first sync, Stampli's captures and a payment read and reconciled.
    services.sync(options)
    bills = sorted(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    stampli.export_captures(bills)
    stampli.export_payments([(bills[0], bills[0].total, bills[0].currency)])
    services.pull_stampli(options, now=True)
    services.sync(options)
    services.push_bills(options, full=True, dry_run=False, since=None)  # the daily sweep
    statements.clear()

    services.sync(options)  # a quiet cron run
    renamed = sorted(fb.data.vendors)[0]
    fb.update_vendor(renamed, vendor_name="Renamed Ltd.")  # the vendor's row only (#27)
    paid = next(i for i, b in sorted(fb.data.bills.items()) if b["vendorid"] != renamed)
    fb.create_payment(paid, amount="1.00")  # a moved bill's payments
    stampli.export_payments([(bills[1], Decimal("1.00"), bills[1].currency)])
    services.pull_stampli(options, now=True)
    services.sync(options)  # and the run after those changes
    services.retry(options, bills=[sorted(fb.data.bills)[0]], vendors=[], failed=False,
                   dead=False, force=True, queue_only=False)  # fmt: skip

    # The recording saw the paths that matter: moved payments, changed bills, versions.
    assert any("count(*) AS n FROM deliveries WHERE kind = ?" in sql for sql in statements)
    assert any("CAST(json_extract(payload, '$.bill_id') AS INTEGER)" in sql for sql in statements)
    assert any("FROM stampli_records WHERE fb_bill_id IN" in sql for sql in statements)
    with open_runtime(options) as rt:
        offending = {}
        for sql, params in list(statements.items()):
            if not sql.upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
                continue
            if sql in ALLOWED:
                continue
            plan = [
                str(tuple(row)[-1]) for row in rt.store.query(f"EXPLAIN QUERY PLAN {sql}", params)
            ]
            if whole_reads(sql, plan):
                offending[sql] = plan
    assert offending == {}, "\n".join(f"{sql}\n    {plan}" for sql, plan in offending.items())
