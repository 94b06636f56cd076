"""The push engine's decisions, over a real encrypted store and in-memory edges."""

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from fbstampli.config import Settings, SftpSettings, SyncSettings
from fbstampli.errors import RemoteError
from fbstampli.models import Bill, BillPayment, Vendor, VisState
from fbstampli.store import Store
from fbstampli.store.outbox import BatchState
from fbstampli.sync.deliver import advance_batch, create_batches
from fbstampli.sync.marker import is_marker_name
from fbstampli.sync.push import PushContext, push
from tests.support.fakes import FakeClock, ListSource, MemoryTransport, SimpleRenderer, gone


def vendor(fb_id: int, name: str = "") -> Vendor:
    return Vendor(fb_id=fb_id, name=name or f"Vendor {fb_id}")


def bill(fb_id: int, vendor_id: int, total: str = "100.00", **changes: object) -> Bill:
    base = Bill(
        fb_id=fb_id,
        vendor_id=vendor_id,
        bill_number=f"INV-{fb_id}",
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        currency_code="USD",
        amount=Decimal(total),
        tax_amount=Decimal(0),
        total_amount=Decimal(total),
        outstanding=Decimal(total),
        paid=Decimal(0),
        status="unpaid",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def payment(fb_id: int, bill_id: int, amount: str = "40.00") -> BillPayment:
    return BillPayment(fb_id, bill_id, Decimal(amount), "USD", date(2026, 11, 20))


@pytest.fixture
def source() -> ListSource:
    return ListSource(
        vendors=[vendor(1), vendor(2)],
        bills=[bill(10, 1), bill(11, 2, "250.50")],
        payments=[payment(100, 10)],
    )


@pytest.fixture
def remote() -> MemoryTransport:
    return MemoryTransport()


def context(
    store: Store, source: ListSource, remote: MemoryTransport, clock: FakeClock, **sync: object
) -> PushContext:
    settings = Settings(sync=SyncSettings(**sync), sftp=SftpSettings(upload_attempts=2))  # type: ignore[arg-type]
    return PushContext(
        store=store,
        settings=settings,
        clock=clock,
        source=lambda: source,
        transport=remote.connection,  # a new connection per run, as SFTP makes
        renderer=SimpleRenderer(),
        business="acme",
    )


def inbound(remote: MemoryTransport) -> dict[str, bytes]:
    """What was sent: the inbound folder but the marker (`sync.marker`)."""
    return {n: d for n, d in remote.folder("inbound").items() if not is_marker_name(n)}


def delivered_rows(remote: MemoryTransport) -> list[str]:
    return [
        line
        for name, data in sorted(inbound(remote).items())
        for line in data.decode().splitlines()
    ]


def test_first_push_delivers_vendors_then_bills_then_payments(store, source, remote, clock) -> None:
    report = push(context(store, source, remote, clock))
    names = sorted(inbound(remote))
    assert [name.rsplit("_", 1)[1] for name in names] == [
        "1-vendors.csv",
        "2-bills.csv",
        "3-payments.csv",
    ]
    upload_order = [name for op, name in remote.calls if op == "rename"]
    assert upload_order == names
    assert report.problems == []
    assert len(delivered_rows(remote)) == 5


def test_second_push_delivers_nothing(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    before = dict(inbound(remote))
    report = push(context(store, source, remote, clock, full_sweep_hours=1))
    assert inbound(remote) == before
    assert report.counts.get("unchanged") == 5


def test_changed_bill_is_delivered_once_as_update(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    source.bills[0] = bill(10, 1, "120.00")
    push(context(store, source, remote, clock))
    push(context(store, source, remote, clock))
    rows = delivered_rows(remote)
    assert rows.count("10,Vendor 1,120.00") == 1
    assert rows.count("10,Vendor 1,100.00") == 1


def test_bill_changed_back_is_delivered_again(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    source.bills[0] = bill(10, 1, "120.00")
    push(context(store, source, remote, clock))
    source.bills[0] = bill(10, 1, "100.00")
    push(context(store, source, remote, clock))
    assert delivered_rows(remote).count("10,Vendor 1,100.00") == 2


def test_deleted_bill_is_audited_not_sent_when_set_to_report(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock, deleted_bills="report"))
    source.bills[1] = bill(11, 2, "250.50", vis_state=VisState.DELETED)
    report = push(context(store, source, remote, clock, deleted_bills="report"), full=True)
    assert report.counts.get("deleted") == 1
    audit = store.query("SELECT action FROM audit WHERE kind = 'bill' AND fb_id = 11")
    assert "deleted_in_freshbooks" in [row["action"] for row in audit]
    assert len(inbound(remote)) == 3


def test_deleted_bill_is_sent_once_as_a_void_version(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    source.bills[1] = bill(11, 2, "250.50", vis_state=VisState.DELETED)
    report = push(context(store, source, remote, clock), full=True)
    assert report.counts.get("deleted") == 1
    assert len(inbound(remote)) == 4
    push(context(store, source, remote, clock), full=True)
    assert len(inbound(remote)) == 4


def test_bills_wait_while_a_vendor_is_undelivered(store, source, remote, clock) -> None:
    remote.fail("write_part", gone(), times=2)
    report = push(context(store, source, remote, clock))
    assert inbound(remote) == {}
    assert report.counts.get("failed") == 2
    assert any("wait" in note for note in report.notes) or report.problems
    clock.advance(minutes=16)
    report = push(context(store, source, remote, clock))
    names = sorted(inbound(remote))
    assert len(names) == 3
    assert report.problems == []


def test_upload_retried_within_the_run_on_a_new_connection(store, source, remote, clock) -> None:
    remote.fail("rename", gone())
    connections = []

    def factory() -> MemoryTransport:
        connections.append(1)
        return remote.connection()

    ctx = context(store, source, remote, clock)
    ctx.transport = factory
    report = push(ctx)
    assert report.problems == []
    assert len(inbound(remote)) == 3
    assert len(connections) == 2
    assert clock.slept


def test_upload_waits_between_tries_but_not_after_the_last(store, source, remote, clock) -> None:
    remote.fail("write_part", RemoteError("permission denied"), times=2)  # both tries
    report = push(context(store, source, remote, clock))
    assert report.problems != []
    assert clock.slept == [1.0]


def test_failures_back_off_then_die(store, source, remote, clock) -> None:
    ctx = context(store, source, remote, clock, max_attempts=3)
    for expected_attempts in (1, 2, 3):
        remote.fail("write_part", RemoteError("permission denied"), times=2)
        push(ctx)
        row = store.query_one(
            "SELECT status, attempts FROM deliveries WHERE kind = 'vendor' AND fb_id = 1"
        )
        assert row["attempts"] == expected_attempts
        clock.advance(hours=25)
    assert row["status"] == "dead"
    assert inbound(remote) == {}


def test_backoff_waits_before_the_next_try(store, source, remote, clock) -> None:
    remote.fail("write_part", gone(), times=2)
    push(context(store, source, remote, clock))
    clock.advance(minutes=5)
    push(context(store, source, remote, clock))
    assert inbound(remote) == {}


def test_since_leaves_older_bills_out_and_is_remembered(store, source, remote, clock) -> None:
    source.bills.append(bill(12, 1, issue_date=date(2025, 1, 1)))
    source.payments.append(payment(101, 12))
    push(context(store, source, remote, clock), since="2026-01-01")
    assert not any(row.startswith("12,") for row in delivered_rows(remote))
    push(context(store, source, remote, clock))
    assert not any(
        row.startswith("12,") or row.startswith("101,") for row in delivered_rows(remote)
    )


def test_dry_run_writes_files_and_records_nothing(store, source, remote, clock, tmp_path) -> None:
    report = push(context(store, source, remote, clock), dry_run_folder=tmp_path / "dry")
    assert len(list((tmp_path / "dry").iterdir())) == 3
    assert inbound(remote) == {}
    assert store.query_one("SELECT count(*) AS n FROM deliveries")["n"] == 0
    assert report.counts["files.bill"] == 1


def test_webhook_events_are_drained_once(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    for _ in range(2):
        store.execute(
            "INSERT INTO events (received_at, name, object_id, account_id) "
            "VALUES (?, 'bill.update', 10, 'A')",
            (store.now_text(),),
        )
    source.bills[0] = bill(10, 1, "130.00")
    report = push(context(store, source, remote, clock), only_events=True)
    assert report.counts["events"] == 2
    assert delivered_rows(remote).count("10,Vendor 1,130.00") == 1
    assert push(context(store, source, remote, clock), only_events=True).counts["events"] == 0


# -- the journal: every state a killed run can leave behind ------------------------


def planned_vendor_batch(store: Store, clock: FakeClock) -> dict:
    from fbstampli.models import Kind
    from fbstampli.store.outbox import queue_delivery

    with store.transaction():
        queue_delivery(
            store, kind=Kind.VENDOR, fb_id=1, content_hash="h1", rows=[("1", "Vendor 1")]
        )
    settings = Settings()
    (batch_id,) = create_batches(
        store,
        Kind.VENDOR,
        SimpleRenderer(),
        settings=settings,
        business="acme",
        clock=clock,
        run_id=None,
    )
    return dict(store.query_one("SELECT * FROM batches WHERE id = ?", (batch_id,)))


def set_state(store: Store, batch: dict, state: BatchState) -> dict:
    store.execute("UPDATE batches SET state = ? WHERE id = ?", (state.value, batch["id"]))
    return dict(store.query_one("SELECT * FROM batches WHERE id = ?", (batch["id"],)))


def delivery_status(store: Store) -> str:
    return store.query_one("SELECT status FROM deliveries")["status"]


def test_killed_while_writing_part_is_resent_under_same_name(store, remote, clock) -> None:
    batch = set_state(store, planned_vendor_batch(store, clock), BatchState.UPLOADING)
    remote.folder("inbound")[f".{batch['file_name']}.part"] = b"half"
    advance_batch(store, remote, store.query_one("SELECT * FROM batches"), None)
    assert inbound(remote) == {batch["file_name"]: bytes(batch["content"])}
    assert delivery_status(store) == "delivered"


def test_verified_part_is_only_renamed(store, remote, clock) -> None:
    batch = set_state(store, planned_vendor_batch(store, clock), BatchState.PART_VERIFIED)
    remote.folder("inbound")[f".{batch['file_name']}.part"] = bytes(batch["content"])
    advance_batch(store, remote, store.query_one("SELECT * FROM batches"), None)
    assert ("write_part", batch["file_name"]) not in remote.calls
    assert list(inbound(remote)) == [batch["file_name"]]


def test_rename_sent_and_final_present_is_delivered_without_upload(store, remote, clock) -> None:
    batch = set_state(store, planned_vendor_batch(store, clock), BatchState.RENAME_SENT)
    remote.folder("inbound")[batch["file_name"]] = bytes(batch["content"])
    advance_batch(store, remote, store.query_one("SELECT * FROM batches"), None)
    assert [op for op, _ in remote.calls if op in ("write_part", "rename")] == []
    assert delivery_status(store) == "delivered"


def test_rename_sent_and_both_gone_means_stampli_took_it(store, remote, clock) -> None:
    set_state(store, planned_vendor_batch(store, clock), BatchState.RENAME_SENT)
    advance_batch(store, remote, store.query_one("SELECT * FROM batches"), None)
    assert inbound(remote) == {}
    assert delivery_status(store) == "delivered"


def test_verified_part_that_vanished_stops_and_alerts(store, remote, clock) -> None:
    from fbstampli.sync.deliver import StuckBatchError

    set_state(store, planned_vendor_batch(store, clock), BatchState.PART_VERIFIED)
    with pytest.raises(StuckBatchError, match="consumes temporary files"):
        advance_batch(store, remote, store.query_one("SELECT * FROM batches"), None)
    assert store.query_one("SELECT state FROM batches")["state"] == "stuck"
    assert inbound(remote) == {}


def test_connection_factory_is_not_called_when_nothing_to_send(store, remote, clock) -> None:
    empty = ListSource()
    calls = []
    ctx = context(store, empty, remote, clock)
    ctx.transport = lambda: calls.append(1) or remote
    push(ctx)
    assert calls == []


def test_delivered_batches_drop_their_content(store, source, remote, clock) -> None:
    push(context(store, source, remote, clock))
    assert store.query_one("SELECT count(*) AS n FROM batches WHERE content IS NOT NULL")["n"] == 0
    rows = json.loads(
        store.query_one("SELECT rows FROM deliveries WHERE kind = 'bill' AND fb_id = 10")["rows"]
    )
    assert rows == [["10", "Vendor 1", "100.00"]]


def test_default_template_renders_every_kind_through_the_engine(
    store, source, remote, clock
) -> None:
    from fbstampli.stampli.render import TemplateRenderer

    ctx = context(store, source, remote, clock)
    ctx.renderer = TemplateRenderer.load(None)
    report = push(ctx)
    assert report.problems == []
    names = sorted(inbound(remote))
    assert [name.rsplit("_", 1)[1] for name in names] == [
        "1-vendors.csv",
        "2-bills.csv",
        "3-payments.csv",
    ]
    bills_file = inbound(remote)[names[1]].decode()
    assert "Vendor 2" in bills_file
    assert "250.50" in bills_file


def test_bill_a_webhook_names_is_looked_at_even_if_its_timestamp_did_not_move(
    store, remote, clock
) -> None:
    day = datetime(2026, 11, 1, tzinfo=UTC)
    source = ListSource(
        vendors=[replace(vendor(1), updated_at=day)],
        bills=[bill(10, 1, updated_at=day), bill(11, 1, updated_at=day + timedelta(days=1))],
    )
    push(context(store, source, remote, clock))  # first run: everything, and the watermarks
    source.bills[0] = bill(10, 1, "130.00", updated_at=day)  # changed, but not re-dated
    push(context(store, source, remote, clock))
    assert "10,Vendor 1,130.00" not in delivered_rows(remote)  # below the watermark: unseen
    store.execute(
        "INSERT INTO events (received_at, name, object_id, account_id) "
        "VALUES (?, 'bill.update', 10, 'A')",
        (store.now_text(),),
    )
    push(context(store, source, remote, clock))
    assert delivered_rows(remote).count("10,Vendor 1,130.00") == 1
