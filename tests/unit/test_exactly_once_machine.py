"""Exactly-once delivery as a hypothesis state machine (vdirsyncer's `SyncMachine` is the model).

Hypothesis interleaves FreshBooks creating and changing vendors and bills, push runs (full or
incremental) under transport faults — an upload that fails, a connection dropped after the
`.part` was written, one dropped after the server renamed but before the client heard — and
"kills": the process dies right after a side effect (a `BaseException` no engine handler
catches) and the next run opens the state file afresh. The engine is the real one, over a real
encrypted `Store`, with the in-memory FreshBooks and SFTP fakes (which pass the transport
contract the real servers pass).

What must hold: no object's content ever reaches Stampli twice in a row (a duplicate), what
is delivered for an object is a subsequence of the versions it went through, and once the
faults stop and a run completes, each object's latest version is the last one delivered.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import shutil
import tempfile
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fbstampli.config import Settings, SftpSettings, SyncSettings
from fbstampli.models import Bill, Vendor
from fbstampli.store import Store
from fbstampli.store.keys import KeySource, StateKey, new_key_hex
from fbstampli.sync.push import PushContext, push
from tests.support.fakes import FakeClock, ListSource, MemoryTransport, SimpleRenderer, gone
from tests.support.summary import SUMMARY

FILE_NAME = re.compile(r"_b(\d+)_(\d)-(vendors|bills|payments)\.csv$")
Key = tuple[str, str]  # (kind, FreshBooks id)
Row = tuple[str, ...]


class Killed(BaseException):
    """The process dying at this point: nothing in the engine may catch it."""


def a_bill(fb_id: int, vendor_id: int, total: Decimal, clock: FakeClock) -> Bill:
    return Bill(
        fb_id=fb_id,
        vendor_id=vendor_id,
        bill_number=f"INV-{fb_id}",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        currency_code="USD",
        amount=total,
        tax_amount=Decimal(0),
        total_amount=total,
        outstanding=total,
        paid=Decimal(0),
        status="unpaid",
        updated_at=clock.now(),
    )


def delivered(remote: MemoryTransport) -> dict[Key, list[Row]]:
    """Every row in Stampli's inbound, per object, in delivery (batch, then file) order."""
    found: list[tuple[int, int, str, bytes]] = []
    for name, data in remote.folder("inbound").items():
        match = FILE_NAME.search(name)
        if match and not name.startswith("."):
            found.append((int(match[1]), int(match[2]), match[3], data))
    rows: dict[Key, list[Row]] = {}
    for _, _, label, data in sorted(found):
        for row in csv.reader(io.StringIO(data.decode())):
            rows.setdefault((label, row[0]), []).append(tuple(row))
    return rows


def is_subsequence(part: list[Row], whole: list[Row]) -> bool:
    remaining = iter(whole)
    return all(any(item == candidate for candidate in remaining) for item in part)


class ExactlyOnceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="exactly-once-"))
        self.clock = FakeClock()
        self.key = StateKey(new_key_hex(), KeySource.FILE)
        self.store = Store.create(self.folder / "state.db", self.key, self.clock)
        self.source = ListSource()
        self.remote = MemoryTransport()
        self.history: dict[Key, list[Row]] = {}  # every version each object went through
        self.next_id = 1

    # -- FreshBooks changes --------------------------------------------------

    def _record_versions(self) -> None:
        """Note each object's rendered row when it differs from the one noted before."""
        names = {v.fb_id: v.name for v in self.source.vendors}
        current: dict[Key, Row] = {("vendors", str(v.fb_id)): (str(v.fb_id), v.name)
                                   for v in self.source.vendors}  # fmt: skip
        for b in self.source.bills:
            row = (str(b.fb_id), names.get(b.vendor_id, ""), str(b.total_amount))
            current[("bills", str(b.fb_id))] = row
        for key, row in current.items():
            versions = self.history.setdefault(key, [])
            if not versions or versions[-1] != row:
                versions.append(row)

    def _touch(self) -> None:
        self.clock.advance(minutes=1)

    @precondition(lambda self: len(self.source.vendors) < 4)
    @rule(name=st.sampled_from(["Acme", "Globex", "Initech"]))
    def create_vendor(self, name: str) -> None:
        self._touch()
        fb_id = self.next_id
        self.next_id += 1
        self.source.vendors.append(Vendor(fb_id=fb_id, name=f"{name} {fb_id}",
                                          updated_at=self.clock.now()))  # fmt: skip
        self._record_versions()

    @precondition(lambda self: self.source.vendors)
    @rule(data=st.data(), name=st.sampled_from(["Renamed", "Acme", "Umbrella"]))
    def rename_vendor(self, data: st.DataObject, name: str) -> None:
        self._touch()
        index = data.draw(st.integers(0, len(self.source.vendors) - 1))
        old = self.source.vendors[index]
        self.source.vendors[index] = replace(old, name=f"{name} {old.fb_id}",
                                             updated_at=self.clock.now())  # fmt: skip
        self._record_versions()

    @precondition(lambda self: self.source.vendors and len(self.source.bills) < 6)
    @rule(data=st.data(), cents=st.integers(1, 99_999))
    def create_bill(self, data: st.DataObject, cents: int) -> None:
        self._touch()
        vendor = data.draw(st.sampled_from(self.source.vendors))
        fb_id = self.next_id
        self.next_id += 1
        total = Decimal(cents).scaleb(-2)
        self.source.bills.append(a_bill(fb_id, vendor.fb_id, total, self.clock))
        self._record_versions()

    @precondition(lambda self: self.source.bills)
    @rule(data=st.data(), cents=st.integers(1, 99_999))
    def change_bill(self, data: st.DataObject, cents: int) -> None:
        self._touch()
        index = data.draw(st.integers(0, len(self.source.bills) - 1))
        old = self.source.bills[index]
        total = Decimal(cents).scaleb(-2)
        self.source.bills[index] = a_bill(old.fb_id, old.vendor_id, total, self.clock)
        self._record_versions()

    # -- runs, faults and kills ----------------------------------------------

    def _context(self) -> PushContext:
        sync = SyncSettings(max_attempts=1000)  # a fault never makes a batch give up here
        return PushContext(
            store=self.store,
            settings=Settings(sync=sync, sftp=SftpSettings(upload_attempts=2)),
            clock=self.clock,
            source=lambda: self.source,
            transport=self.remote.connection,
            renderer=SimpleRenderer(),
            business="acme",
        )

    def _push(self, *, full: bool) -> None:
        self.clock.advance(minutes=1)
        try:
            push(self._context(), full=full)
        except Killed:
            self.store.close()  # the next run is a new process opening the state afresh
            self.store = Store.open(self.folder / "state.db", self.key, self.clock)
        finally:
            self.remote.faults.clear()
            self.remote.after_faults.clear()

    @rule(full=st.booleans())
    def push_cleanly(self, full: bool) -> None:
        self._push(full=full)

    @rule(
        full=st.booleans(),
        fault=st.sampled_from(
            [
                "upload fails",
                "dropped after .part",
                "dropped after rename",
                "listing fails",
                "killed after .part",
                "killed before rename",
                "killed after rename",
            ]
        ),
        times=st.integers(1, 3),
    )
    def push_with_fault(self, full: bool, fault: str, times: int) -> None:
        SUMMARY.add("exactly-once faults")
        if fault == "upload fails":
            self.remote.fail("write_part", gone(), times=times)
        elif fault == "dropped after .part":
            self.remote.fail_after("write_part", gone(), times=times)
        elif fault == "dropped after rename":
            self.remote.fail_after("rename", gone(), times=times)
        elif fault == "listing fails":
            self.remote.fail("list", gone(), times=times)
        elif fault == "killed after .part":
            self.remote.fail_after("write_part", Killed())
        elif fault == "killed before rename":
            self.remote.fail("rename", Killed())
        else:
            self.remote.fail_after("rename", Killed())
        self._push(full=full)

    @rule(hours=st.sampled_from([0.5, 2, 30]))
    def time_passes(self, hours: float) -> None:
        self.clock.advance(hours=hours)

    @rule()
    def settle(self) -> None:
        """Faults stop and every backoff has run out: the latest versions must be there."""
        self.clock.advance(hours=30)
        self._push(full=True)
        rows = delivered(self.remote)
        for key, versions in self.history.items():
            assert rows.get(key, [])[-1:] == [versions[-1]], (key, rows.get(key), versions)

    # -- what must always hold -----------------------------------------------

    @invariant()
    def nothing_is_delivered_twice(self) -> None:
        for key, rows in delivered(self.remote).items():
            repeats = [row for before, row in itertools.pairwise(rows) if before == row]
            assert not repeats, f"{key} delivered twice in a row: {repeats}"
            assert is_subsequence(rows, self.history.get(key, [])), (key, rows, self.history)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


ExactlyOnceMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestExactlyOnce = ExactlyOnceMachine.TestCase
