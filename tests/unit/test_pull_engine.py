"""pull-stampli's decisions, over a real encrypted store and an in-memory SFTP folder."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest

import fbstampli.sync.pull as pull_module
from fbstampli.config import PullSettings, Settings, StampliSettings
from fbstampli.errors import RemoteUnavailableError
from fbstampli.models import Bill, Kind, StampliRecord, Vendor, VisState
from fbstampli.models.remote import RemoteFile
from fbstampli.report import RunReport
from fbstampli.stampli.parse import parse_export as real_parse
from fbstampli.stampli.template import Template, load_template
from fbstampli.store import Store
from fbstampli.store.snapshots import payload_of
from fbstampli.sync.connection import Connection
from fbstampli.sync.pull import PullContext, is_due, pull
from tests.support.fakes import FakeClock, MemoryTransport, gone

MOMENT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

CAPTURE_HEADER = (
    "Stampli Invoice ID,FreshBooks Bill ID,Status,Vendor ID,Vendor Name,Invoice Number,"
    "Invoice Total,Currency,Captured At\r\n"
)
PAYMENT_HEADER = (
    "Stampli Invoice ID,FreshBooks Bill ID,Payment ID,Payment Date,Amount,Currency,"
    "Payment Method,Status,Vendor Name,Invoice Number\r\n"
)


def captures(*bill_ids: int) -> bytes:
    rows = "".join(
        f"STP-{b:06d},{b},Captured,,Vendor,INV-{b},100.00,USD,2026-11-25T09:00:00Z\r\n"
        for b in bill_ids
    )
    return (CAPTURE_HEADER + rows).encode()


def payments(*rows: tuple[int, str]) -> bytes:
    lines = "".join(
        f"STP-{b:06d},{b},PAY-{i},2026-11-24,{amount},USD,ACH,Paid,Vendor,INV-{b}\r\n"
        for i, (b, amount) in enumerate(rows)
    )
    return (PAYMENT_HEADER + lines).encode()


MALFORMED = b"Stampli Invoice ID,Amount\r\nSTP-1,not-a-number\r\n"


@dataclass
class StampedTransport(MemoryTransport):
    """MemoryTransport whose files carry an mtime, as SFTP servers report."""

    mtimes: dict[str, datetime] = field(default_factory=dict)
    tick: int = 0

    def put(self, name: str, data: bytes, directory: str = "outbound") -> None:
        self.tick += 1
        self.folder(directory)[name] = data
        self.mtimes[name] = MOMENT + timedelta(seconds=self.tick)

    def list_files(self, directory: str) -> list[RemoteFile]:
        self._step("list", directory)
        return [
            RemoteFile(name, len(data), self.mtimes.get(name))
            for name, data in sorted(self.folder(directory).items())
        ]

    def downloads(self) -> list[str]:
        return [name for operation, name in self.calls if operation == "download"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MOMENT, may_sleep=False)  # pull never sleeps


@pytest.fixture
def remote() -> StampedTransport:
    return StampedTransport()


@pytest.fixture
def template() -> Template:
    return load_template(None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def poll(
    store: Store,
    remote: MemoryTransport,
    template: Template,
    home: Path,
    *,
    opened: list[MemoryTransport] | None = None,
    **stampli: Any,
) -> RunReport:
    """One poll; each connection the engine opens is recorded in `opened` when given."""

    def connect() -> MemoryTransport:
        remote.closed = False  # a new connection to the same folder
        if opened is not None:
            opened.append(remote)
        return remote

    settings = Settings(stampli=StampliSettings(**stampli), pull=PullSettings(max_file_mb=1))
    context = PullContext(
        template=template,
        settings=settings,
        folder=home / "stampli",
        quarantine=home / "stampli" / "quarantine",
        run_id=None,
    )
    report = RunReport("pull-stampli")
    pull(store, Connection(connect), context, report)
    return report


def stored(store: Store) -> list[tuple[str, str, int | None]]:
    return [
        (row["export_kind"], row["stampli_invoice_id"], row["fb_bill_id"])
        for row in store.query(
            "SELECT export_kind, stampli_invoice_id, fb_bill_id FROM stampli_records ORDER BY id"
        )
    ]


def states(store: Store) -> dict[str, str]:
    return {
        row["name"]: row["state"]
        for row in store.query("SELECT name, state FROM stampli_files ORDER BY id")
    }


def test_a_second_pull_downloads_and_stores_nothing(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10, 11))
    remote.put("stampli_payment_1.csv", payments((10, "100.00")))
    first = poll(store, remote, template, home)
    assert first.counts == {"records": 3, "files": 2}
    assert remote.downloads() == ["stampli_capture_1.csv", "stampli_payment_1.csv"]

    second = poll(store, remote, template, home)
    assert second.counts == {}
    assert second.problems == []
    assert remote.downloads() == ["stampli_capture_1.csv", "stampli_payment_1.csv"]
    assert len(stored(store)) == 3


def test_records_link_to_the_bill_id_we_wrote(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10, 11))
    poll(store, remote, template, home)
    assert stored(store) == [("capture", "STP-000010", 10), ("capture", "STP-000011", 11)]
    audit = store.query("SELECT fb_id, action FROM audit WHERE kind = 'bill' ORDER BY id")
    assert [(row["fb_id"], row["action"]) for row in audit] == [
        (10, "stampli_capture"),
        (11, "stampli_capture"),
    ]


def test_malformed_file_is_quarantined_while_the_rest_of_the_poll_is_stored(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))
    remote.put("stampli_payment_0_broken.csv", MALFORMED)
    remote.put("stampli_payment_1.csv", payments((10, "100.00")))
    report = poll(store, remote, template, home)

    assert report.counts == {"records": 2, "files": 2, "quarantined": 1}
    assert len(report.problems) == 1
    assert report.problems[0].startswith("quarantined stampli_payment_0_broken.csv")
    assert report.exit_code == 1
    assert states(store) == {
        "stampli_capture_1.csv": "processed",
        "stampli_payment_0_broken.csv": "quarantined",
        "stampli_payment_1.csv": "processed",
    }
    quarantined = home / "stampli" / "quarantine" / "stampli_payment_0_broken.csv"
    assert quarantined.read_bytes() == MALFORMED
    row = store.query_one("SELECT reason FROM stampli_files WHERE state = 'quarantined'")
    assert row is not None
    assert "Payment ID" in row["reason"] or "required" in row["reason"]
    assert store.query_one("SELECT 1 FROM audit WHERE action = 'stampli_file_quarantined'")

    again = poll(store, remote, template, home)
    assert again.problems == []  # reported once, not every 15 minutes
    assert remote.downloads().count("stampli_payment_0_broken.csv") == 1


def test_a_file_that_fails_halfway_stores_none_of_its_rows(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    good = payments((10, "100.00"), (11, "50.00")).decode()
    remote.put("stampli_payment_1.csv", (good + "STP-12,12,PAY-9,2026-11-24,lots,USD\r\n").encode())
    report = poll(store, remote, template, home)
    assert report.counts == {"quarantined": 1}
    assert stored(store) == []


def test_identical_content_under_a_new_name_is_not_processed_twice(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_payment_1.csv", payments((10, "100.00")))
    poll(store, remote, template, home)
    remote.put("stampli_payment_1_copy.csv", payments((10, "100.00")))
    report = poll(store, remote, template, home)

    assert report.counts == {"duplicates": 1}
    assert "repeats stampli_payment_1.csv" in report.notes[0]
    assert states(store)["stampli_payment_1_copy.csv"] == "duplicate"
    assert len(stored(store)) == 1
    assert poll(store, remote, template, home).counts == {}


def test_changed_content_under_an_old_name_is_processed(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_payment_1.csv", payments((10, "5.00")))
    poll(store, remote, template, home)
    remote.put("stampli_payment_1.csv", payments((10, "6.00")))  # same size, new mtime
    report = poll(store, remote, template, home)

    assert report.counts == {"records": 1, "files": 1}
    amounts = [
        row["payload"] for row in store.query("SELECT payload FROM stampli_records ORDER BY id")
    ]
    assert '"amount": "5.00"' in amounts[0]
    assert '"amount": "6.00"' in amounts[1]


@pytest.mark.parametrize(
    "name",
    ["../stampli_payment_escape.csv", "..\\stampli_payment_escape.csv", "sub/stampli_payment.csv"],
)
def test_a_remote_name_that_would_leave_the_folder_is_refused(
    store: Store, template: Template, home: Path, tmp_path: Path, name: str
) -> None:
    remote = MemoryTransport()
    remote.folder("outbound")[name] = payments((10, "1.00"))
    remote.folder("outbound")["stampli_payment_1.csv"] = payments((11, "2.00"))
    report = poll(store, remote, template, home)

    assert report.counts == {"records": 1, "files": 1}
    assert len(report.problems) == 1
    assert "refusing export name" in report.problems[0]
    assert ("download", name) not in remote.calls
    assert not list(tmp_path.glob("*escape*"))
    assert stored(store) == [("payment", "STP-000011", 11)]


def test_a_file_over_the_size_limit_is_quarantined_without_downloading(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_payment_huge.csv", PAYMENT_HEADER.encode() + b"x" * (1024 * 1024 + 1))
    report = poll(store, remote, template, home)
    assert report.counts == {"quarantined": 1}
    assert "pull.max_file_mb" in report.problems[0]
    assert remote.downloads() == []


def test_files_that_are_not_exports_are_left_alone(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put(".stampli_payment_1.csv.part", payments((10, "1.00")))
    remote.put("readme.txt", b"hello")
    report = poll(store, remote, template, home)
    assert report.counts == {}
    assert remote.downloads() == []


def test_done_files_move_to_the_archive_and_quarantined_ones_stay(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))
    remote.put("stampli_payment_0_broken.csv", MALFORMED)
    poll(store, remote, template, home, archive_dir="archive")
    assert sorted(remote.folder("archive")) == ["stampli_capture_1.csv"]
    assert sorted(remote.folder("outbound")) == ["stampli_payment_0_broken.csv"]


def test_a_failed_archive_move_is_a_note_not_a_failure(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    from fbstampli.errors import RemoteError

    remote.put("stampli_capture_1.csv", captures(10))
    remote.fail("move", RemoteError("archive/stampli_capture_1.csv exists"))
    report = poll(store, remote, template, home, archive_dir="archive")
    assert report.problems == []
    assert report.counts == {"records": 1, "files": 1}
    assert "could not archive" in report.notes[0]


def test_a_download_cut_once_is_fetched_again_on_a_fresh_connection_in_the_same_poll(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))
    remote.put("stampli_payment_1.csv", payments((10, "100.00")))
    remote.fail("download", gone())
    opened: list[MemoryTransport] = []
    report = poll(store, remote, template, home, opened=opened)
    assert report.problems == []
    assert report.counts == {"records": 2, "files": 2}
    assert len(opened) == 2, "the second try did not get a new connection"
    assert remote.downloads() == [
        "stampli_capture_1.csv",
        "stampli_capture_1.csv",
        "stampli_payment_1.csv",
    ]


def test_a_download_cut_twice_ends_the_poll_and_the_next_one_stores_it_once(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10, 11))
    remote.fail("download", gone(), times=2)
    with pytest.raises(RemoteUnavailableError):
        poll(store, remote, template, home)
    assert states(store) == {"stampli_capture_1.csv": "downloading"}
    report = poll(store, remote, template, home)
    assert report.counts == {"records": 2, "files": 1}
    assert len(stored(store)) == 2


def test_an_archive_move_cut_once_is_done_on_a_fresh_connection(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))
    remote.fail("move", gone())
    opened: list[MemoryTransport] = []
    report = poll(store, remote, template, home, opened=opened, archive_dir="archive")
    assert report.counts == {"records": 1, "files": 1}
    assert len(opened) == 2
    assert list(remote.folder("archive")) == ["stampli_capture_1.csv"]


def test_a_file_stored_but_not_archived_is_archived_by_the_next_poll_without_storing_again(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))
    remote.fail("move", gone(), times=2)
    with pytest.raises(RemoteUnavailableError):
        poll(store, remote, template, home, archive_dir="archive")
    assert states(store) == {"stampli_capture_1.csv": "processed"}
    report = poll(store, remote, template, home, archive_dir="archive")
    assert report.counts == {}
    assert list(remote.folder("archive")) == ["stampli_capture_1.csv"]
    assert remote.folder("outbound") == {}
    assert len(stored(store)) == 1


@dataclass
class MovesThenLosesTheAnswer(StampedTransport):
    """The first move happens on the server, but its answer is lost with the connection."""

    lost: bool = False

    def move(self, directory: str, name: str, to_directory: str) -> None:
        super().move(directory, name, to_directory)
        if not self.lost:
            self.lost = True
            raise gone()


def test_a_move_whose_answer_was_lost_is_found_done_without_a_note(
    store: Store, template: Template, home: Path
) -> None:
    remote = MovesThenLosesTheAnswer()
    remote.put("stampli_capture_1.csv", captures(10))
    report = poll(store, remote, template, home, archive_dir="archive")
    assert report.counts == {"records": 1, "files": 1}
    assert report.notes == []
    assert list(remote.folder("archive")) == ["stampli_capture_1.csv"]


# -- kill safety ----------------------------------------------------------------------------


class Killed(BaseException):
    """What SIGKILL looks like from inside: nothing after this point runs."""


def test_kill_after_the_bytes_landed_resumes_from_the_local_copy(
    store: Store,
    remote: StampedTransport,
    template: Template,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote.put("stampli_capture_1.csv", captures(10, 11))
    real_download = remote.download

    def download_then_die(directory: str, name: str, dest: Path, *, max_bytes: int) -> Any:
        real_download(directory, name, dest, max_bytes=max_bytes)
        raise Killed

    monkeypatch.setattr(remote, "download", download_then_die)
    with pytest.raises(Killed):
        poll(store, remote, template, home)
    assert states(store) == {"stampli_capture_1.csv": "downloading"}

    monkeypatch.undo()
    report = poll(store, remote, template, home)
    assert report.counts == {"records": 2, "files": 1}
    assert remote.downloads() == ["stampli_capture_1.csv"]  # read from the server once
    assert len(stored(store)) == 2


def test_kill_while_parsing_leaves_the_file_downloaded_and_the_next_run_stores_it_once(
    store: Store,
    remote: StampedTransport,
    template: Template,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote.put("stampli_capture_1.csv", captures(*range(1, 2501)))

    def parse_then_die(template: Template, name: str, stream: IO[bytes]) -> Iterator[StampliRecord]:
        for index, record in enumerate(real_parse(template, name, stream)):
            if index == 1500:  # past the first insert chunk
                raise Killed
            yield record

    monkeypatch.setattr(pull_module, "parse_export", parse_then_die)
    with pytest.raises(Killed):
        poll(store, remote, template, home)
    assert states(store) == {"stampli_capture_1.csv": "downloaded"}
    assert stored(store) == []

    monkeypatch.undo()
    report = poll(store, remote, template, home)
    assert report.counts == {"records": 2500, "files": 1}
    assert remote.downloads() == ["stampli_capture_1.csv"]
    assert len(stored(store)) == 2500
    assert poll(store, remote, template, home).counts == {}


def test_a_downloaded_row_whose_copy_vanished_is_fetched_again(
    store: Store,
    remote: StampedTransport,
    template: Template,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote.put("stampli_capture_1.csv", captures(10))

    def die(*args: object, **kwargs: object) -> Iterator[StampliRecord]:
        raise Killed

    monkeypatch.setattr(pull_module, "parse_export", die)
    with pytest.raises(Killed):
        poll(store, remote, template, home)
    monkeypatch.undo()
    for copy in (home / "stampli").glob("*stampli_capture_1.csv"):
        copy.unlink()
    report = poll(store, remote, template, home)
    assert report.counts == {"records": 1, "files": 1}
    assert len(stored(store)) == 1


# -- linking without our id -----------------------------------------------------------------


def snapshot(store: Store, *objects: Vendor | Bill) -> None:
    with store.transaction():
        for obj in objects:
            kind = Kind.VENDOR if isinstance(obj, Vendor) else Kind.BILL
            store.execute(
                "INSERT INTO source_objects (kind, fb_id, updated_at, vis_state, content_hash, "
                "payload, seen_at) VALUES (?, ?, NULL, ?, '', ?, ?)",
                (kind.value, obj.fb_id, int(VisState.ACTIVE), payload_of(obj), store.now_text()),
            )


def fb_bill(fb_id: int, vendor_id: int, number: str) -> Bill:
    return Bill(
        fb_id=fb_id,
        vendor_id=vendor_id,
        bill_number=number,
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 12, 1),
        currency_code="USD",
        amount=Decimal(100),
        tax_amount=Decimal(0),
        total_amount=Decimal(100),
        outstanding=Decimal(100),
        paid=Decimal(0),
        status="unpaid",
    )


def test_rows_without_our_id_link_by_vendor_and_invoice_number(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    snapshot(
        store,
        Vendor(1, "Acme Ltd"),
        Vendor(2, "Globex"),
        fb_bill(10, 1, "INV-7"),
        fb_bill(20, 2, "INV-7"),  # the same number at another vendor
        fb_bill(30, 2, "G-1"),
    )
    rows = [
        "STP-A,,Captured,,ACME LTD,INV-7,100.00,USD,",  # vendor name, any case
        "STP-B,,Captured,2,,INV-7,100.00,USD,",  # our vendor id
        "STP-C,,Captured,,,INV-7,100.00,USD,",  # no vendor: INV-7 is ambiguous
        "STP-D,,Captured,,,G-1,100.00,USD,",  # no vendor, but only one G-1
        "STP-E,,Captured,,Initech,INV-7,100.00,USD,",  # a vendor we never sent
    ]
    remote.put("stampli_capture_1.csv", (CAPTURE_HEADER + "\r\n".join(rows) + "\r\n").encode())
    poll(store, remote, template, home)
    assert [(invoice, bill) for _, invoice, bill in stored(store)] == [
        ("STP-A", 10),
        ("STP-B", 20),
        ("STP-C", None),
        ("STP-D", 30),
        ("STP-E", None),
    ]


# -- interval ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, True),
        (MOMENT - timedelta(minutes=14, seconds=59), False),
        (MOMENT - timedelta(minutes=15), True),
        (MOMENT - timedelta(hours=3), True),
        (MOMENT + timedelta(hours=1), True),  # clock set back: do not go silent
    ],
)
def test_a_poll_is_due_once_the_interval_has_passed(last: datetime | None, expected: bool) -> None:
    assert is_due(last, MOMENT, timedelta(minutes=15)) is expected


def test_store_records_payload_round_trips_amounts_and_times(
    store: Store, remote: StampedTransport, template: Template, home: Path
) -> None:
    remote.put("stampli_payment_1.csv", payments((10, "12.30")))
    poll(store, remote, template, home)
    row = store.query_one("SELECT payload FROM stampli_records")
    assert row is not None
    data = json.loads(row["payload"])
    assert Decimal(data["amount"]) == Decimal("12.30")
    assert date.fromisoformat(data["payment_date"]) == date(2026, 11, 24)


def test_a_file_failing_in_a_way_no_rule_foresaw_is_quarantined_and_the_poll_goes_on(
    store: Store,
    remote: StampedTransport,
    template: Template,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Once an uncaught error in one file (UTF-7 XML's ValueError) made every later sync exit 70.
    remote.put("stampli_capture_1.csv", captures(10))
    remote.put("stampli_capture_2.csv", captures(11))

    def brittle(template: Template, name: str, stream: IO[bytes]) -> Iterator[StampliRecord]:
        if name == "stampli_capture_1.csv":
            raise RuntimeError("an unforeseen failure")
        return real_parse(template, name, stream)

    monkeypatch.setattr(pull_module, "parse_export", brittle)
    report = poll(store, remote, template, home)
    assert states(store) == {
        "stampli_capture_1.csv": "quarantined",
        "stampli_capture_2.csv": "processed",
    }
    assert any("RuntimeError" in problem for problem in report.problems)
    assert poll(store, remote, template, home).problems == []  # set aside for good
