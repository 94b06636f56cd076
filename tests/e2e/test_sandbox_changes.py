"""`fbstampli sandbox freshbooks add-bill|edit-…|delete-…|restore-…|attach|fire-webhook`.

The real CLI against a running FreshBooks sandbox's admin face, over HTTP; the
webhooks it fires go to a real receiver on 127.0.0.1 and are checked with
fbstampli's own signature check, as `serve-webhook` does.
"""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from fbstampli.freshbooks.webhooks import SIGNATURE_HEADER, verify_signature
from fbstampli.sandbox.fb_admin import small_pdf
from fbstampli.sandbox.freshbooks import FreshBooksSandbox, sandbox_businesses
from tests.support.cli import Result, one_line, read_lines_until, run, start


@dataclass
class Receiver:
    """Collects the webhooks FreshBooks (the sandbox) POSTs: (form, signature header)."""

    received: list[tuple[bytes, str | None]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    caught = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            caught.received.append((body, self.headers.get(SIGNATURE_HEADER)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    caught.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/freshbooks"
    try:
        yield caught
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sandbox(receiver: Receiver) -> Iterator[FreshBooksSandbox]:
    with FreshBooksSandbox(emit_events=True, businesses=sandbox_businesses(2)) as fb:
        for index, account in enumerate(fb.accounts.values()):
            account.seed(vendors=3, bills=6, payments=2, seed=1 + index)
        for event in ("bill", "bill_vendor"):
            record = fb.new_callback(fb.account_id, event, receiver.url, f"verifier-{event}")
            record.verified = True
        yield fb


def change(home: Path, fb: FreshBooksSandbox, *args: str) -> Result:
    return run(home, "sandbox", "freshbooks", *args, "--url", fb.url)


def signed_events(receiver: Receiver) -> list[dict[str, str]]:
    """The events received whose signature checks out with a registered verifier."""
    events = []
    for body, signature in receiver.received:
        verifiers = ("verifier-bill", "verifier-bill_vendor")
        assert any(verify_signature(body, signature, v) for v in verifiers), body
        events.append(dict(parse_qsl(body.decode())))
    return events


def test_edit_bill_changes_the_amount_moves_updated_at_and_fires_a_signed_bill_update(
    tmp_path: Path, sandbox: FreshBooksSandbox, receiver: Receiver
) -> None:
    before = sandbox.data.bills[5]["updated_at"]

    result = change(tmp_path, sandbox, "edit-bill", "--bill", "5", "--amount", "12.50")

    assert result.code == 0, result.stderr
    assert sandbox.data.bill_totals(sandbox.data.bills[5])[0] == Decimal("12.50")
    assert sandbox.data.bills[5]["updated_at"] > before
    assert [(e["name"], e["object_id"]) for e in signed_events(receiver)] == [("bill.update", "5")]
    assert "edited bill 5: amount 12.50" in result.stdout
    assert f"webhook bill.update -> {receiver.url}: delivered (HTTP 200)" in result.stdout


@pytest.mark.slow
def test_delete_and_restore_a_bill_a_vendor_and_a_payment_each_fire_their_event(
    tmp_path: Path, sandbox: FreshBooksSandbox, receiver: Receiver
) -> None:
    payment = next(iter(sandbox.data.payments))
    payment_bill = str(sandbox.data.payments[payment]["billid"])
    steps = [
        (("delete-bill", "--bill", "2"), "bills", 2, 1, ("bill.delete", "2")),
        (("restore-bill", "--bill", "2"), "bills", 2, 0, ("bill.update", "2")),
        (("delete-vendor", "--vendor", "1"), "vendors", 1, 1, ("bill_vendor.delete", "1")),
        (("restore-vendor", "--vendor", "1"), "vendors", 1, 0, ("bill_vendor.update", "1")),
        (("delete-payment", "--payment", str(payment)), "payments", payment, 1, None),
        (("restore-payment", "--payment", str(payment)), "payments", payment, 0, None),
    ]
    for args, table, object_id, vis_state, event in steps:
        receiver.received.clear()
        result = change(tmp_path, sandbox, *args)
        assert result.code == 0, result.stderr
        assert getattr(sandbox.data, table)[object_id]["vis_state"] == vis_state, args
        # A payment has no event of its own: FreshBooks announces its bill (FRESHBOOKS.md §3.3).
        expected = event or ("bill.update", payment_bill)
        assert [(e["name"], e["object_id"]) for e in signed_events(receiver)] == [expected]


def test_add_a_vendor_a_bill_on_it_and_a_payment_of_what_it_owes(
    tmp_path: Path, sandbox: FreshBooksSandbox, receiver: Receiver
) -> None:
    vendor = change(tmp_path, sandbox, "add-vendor", "--name", "Acme Ltd.", "--json")
    vendor_id = json.loads(vendor.stdout)["id"]
    bill = change(tmp_path, sandbox, "add-bill", "--vendor", str(vendor_id), "--amount", "40")
    bill_id = max(sandbox.data.bills)
    paid = change(tmp_path, sandbox, "add-payment", "--bill", str(bill_id))

    assert (vendor.code, bill.code, paid.code) == (0, 0, 0), vendor.stderr + bill.stderr
    assert sandbox.data.vendors[vendor_id]["vendor_name"] == "Acme Ltd."
    assert sandbox.data.bills[bill_id]["vendorid"] == vendor_id
    rendered = sandbox.data.render_bill(sandbox.data.bills[bill_id])
    assert rendered["status"] == "paid"
    assert [e["name"] for e in signed_events(receiver)] == [
        "bill_vendor.create",
        "bill.create",
        "bill.update",
    ]


def test_attach_puts_a_pdf_on_the_bill_as_its_attachment(
    tmp_path: Path, sandbox: FreshBooksSandbox, receiver: Receiver
) -> None:
    result = change(tmp_path, sandbox, "attach", "--bill", "3")

    assert result.code == 0, result.stderr
    attachment = sandbox.data.render_bill(sandbox.data.bills[3])["attachment"]
    assert attachment["media_type"] == "application/pdf"
    upload = sandbox.uploads.get(attachment["jwt"])  # where FreshBooks' uploads API serves it
    assert upload is not None
    pdf = upload.content
    assert pdf.startswith(b"%PDF-1.4")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert [e["name"] for e in signed_events(receiver)] == ["bill.update"]


def test_small_pdf_has_a_cross_reference_table_that_points_at_its_objects() -> None:
    pdf = small_pdf("Bill INV-1")
    start = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    table = pdf[start:].split(b"\n")
    assert table[0] == b"xref"
    for number, entry in enumerate(table[3:8], 1):
        offset = int(entry.split()[0])
        assert pdf[offset:].startswith(b"%d 0 obj" % number)


def test_fire_webhook_sends_the_event_again_to_the_chosen_business_only(
    tmp_path: Path, sandbox: FreshBooksSandbox, receiver: Receiver
) -> None:
    second = sandbox.businesses[1]
    other = sandbox.new_callback(second.account_id, "bill", receiver.url, "verifier-bill")
    other.verified = True

    result = change(
        tmp_path, sandbox, "fire-webhook", "--event", "bill.update", "--id", "4",
        "--account", str(second.business_id),
    )  # fmt: skip

    assert result.code == 0, result.stderr
    assert [(e["name"], e["object_id"], e["account_id"]) for e in signed_events(receiver)] == [
        ("bill.update", "4", second.account_id)
    ]


def test_without_a_registered_callback_it_says_the_next_sync_picks_the_change_up(
    tmp_path: Path,
) -> None:
    with FreshBooksSandbox(emit_events=True) as fb:
        fb.seed(vendors=1, bills=1, payments=0)
        result = change(tmp_path, fb, "edit-bill", "--bill", "1", "--description", "Paper")
    assert result.code == 0, result.stderr
    assert "no webhook" in result.stdout
    assert "fbstampli sync" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("edit-bill", "--bill", "99", "--amount", "1"), "no bill 99 in account ABC123"),
        (("edit-bill", "--bill", "1"), "nothing to change"),
        (("edit-bill", "--bill", "1", "--amount", "lots"), "amount 'lots' is not a number"),
        (("add-bill", "--account", "NOPE"), "no account NOPE in this sandbox"),
        (("fire-webhook", "--event", "invoice.create", "--id", "1"), "event 'invoice.create'"),
    ],
)
def test_a_refused_change_is_one_line_and_exit_2(
    tmp_path: Path, sandbox: FreshBooksSandbox, args: tuple[str, ...], said: str
) -> None:
    result = change(tmp_path, sandbox, *args)
    assert result.code == 2
    assert one_line(result.stderr)
    assert result.stderr.startswith("fbstampli: error: the sandbox refused: ")
    assert said in result.stderr


def test_no_sandbox_at_the_url_is_one_line_saying_to_start_one(tmp_path: Path) -> None:
    with FreshBooksSandbox() as fb:
        url = fb.url  # a port that was just free; nothing listens once the block ends
    result = run(tmp_path, "sandbox", "freshbooks", "delete-bill", "--bill", "1", "--url", url)
    assert result.code == 2
    assert one_line(result.stderr)
    assert "cannot reach the FreshBooks sandbox" in result.stderr
    assert "fbstampli sandbox freshbooks" in result.stderr


def test_businesses_2_serves_two_businesses_on_one_login_each_with_its_own_bills(
    tmp_path: Path,
) -> None:
    process = start(tmp_path, "sandbox", "freshbooks", "--port", "0", "--businesses", "2",
                    "--bills", "4", "--vendors", "2", "--payments", "1")  # fmt: skip
    try:
        banner = read_lines_until(process, lambda line: "Ctrl-C stops" in line)
        url = banner[0].split(" at ", 1)[1].split(",", 1)[0]
        accounts = run(tmp_path, "sandbox", "freshbooks", "add-bill", "--url", url,
                       "--account", "439001", "--json")  # fmt: skip
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert "2 businesses on one login" in banner[0]
    assert [line.split()[1] for line in banner[1:3]] == ["439000", "439001"]
    assert accounts.code == 0, accounts.stderr
    assert json.loads(accounts.stdout)["id"] == 5  # the second business's own 5th bill
