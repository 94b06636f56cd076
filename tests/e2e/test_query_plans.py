"""A cron run's cost follows the changes: no statement it sends reads a whole table that
grows with the history (every delivery, snapshot, Stampli record or audit line ever kept).

Every statement of a first sync, a no-change sync, a sweep and a retry is recorded as sent,
then asked for its query plan. A full scan, or a sort of a whole table, fails the test and
names the statement: the usual cause is a missing index, or SQLite choosing a narrower one
(as the delivery queue once did, reading every bill delivery ever made to find the next
thousand pending ones).
"""

import re
from typing import Any

import pytest

import fbstampli.store as store_module
from fbstampli.options import Options
from fbstampli.runtime import open_runtime
from fbstampli.services import sync as services
from tests.e2e.conftest import Connected

# Tables that grow with the account's history.
GROWING = ("deliveries", "source_objects", "stampli_records", "audit", "batches", "stampli_files")
# Whole reads a run may make on purpose, each bounded by something other than the history.
ALLOWED = {
    # LIMIT 1: stops at the first row.
    "SELECT 1 FROM source_objects LIMIT 1",
    # The open batches only (planned to rename_sent): a delivered batch is never open again.
    "SELECT * FROM batches WHERE state IN (?, ?, ?, ?) ORDER BY file_name",
}


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


# A search on a kind or a status alone reads every delivery of that kind: a scan in disguise.
NARROW_ONLY = re.compile(
    r"SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \((?:kind|status|state)=\?\)$"
)


def whole_reads(plan: list[str]) -> list[str]:
    return [
        step
        for step in plan
        if any(
            step.startswith(f"SCAN {table}") and "COVERING INDEX" not in step for table in GROWING
        )
        or ((match := NARROW_ONLY.match(step)) is not None and match.group(1) in GROWING)
    ]


def test_no_statement_of_a_cron_run_reads_a_table_that_grows_with_the_history(
    connected: Connected, statements: dict[str, Any]
) -> None:
    options = Options(home=connected.home, env={})
    services.sync(options)  # the first sync
    services.sync(options)  # a quiet cron run
    services.push_bills(options, full=True, dry_run=False, since=None)  # the daily sweep
    fb = connected.freshbooks
    renamed = sorted(fb.data.vendors)[0]
    fb.update_vendor(renamed, vendor_name="Renamed Ltd.")  # its bills' and payments' rows
    paid = next(i for i, b in sorted(fb.data.bills.items()) if b["vendorid"] != renamed)
    fb.create_payment(paid, amount="1.00")  # a moved bill's payments
    services.sync(options)
    bill = sorted(fb.data.bills)[0]
    services.retry(options, bills=[bill], vendors=[], failed=False, dead=False, force=True,
                   queue_only=False)  # fmt: skip
    assert len(statements) > 30  # the recording saw the runs, the rename and payment paths too
    assert any("INDEXED BY source_objects_bill_vendor JOIN" in sql for sql in statements)
    assert any("CAST(json_extract(payload, '$.bill_id') AS INTEGER)" in sql for sql in statements)
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
            if whole_reads(plan):
                offending[sql] = plan
    assert offending == {}, "\n".join(f"{sql}\n    {plan}" for sql, plan in offending.items())
