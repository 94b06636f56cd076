"""A bill's document reaches Stampli with the bill (issue 26): the real CLI, the FreshBooks
sandbox's uploads API and a real SFTP server."""

from __future__ import annotations

import csv
import hashlib
import io

from fbstampli.sandbox.documents import make_gif, make_jpeg, make_pdf
from tests.e2e.conftest import Connected


def bill_rows(connected: Connected, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((connected.inbound / name).read_text("utf-8"))))


def new_files(connected: Connected, before: set[str]) -> list[str]:
    return sorted(set(connected.inbound_files()) - before)


def row_of(connected: Connected, names: list[str], bill_id: int) -> dict[str, str]:
    (bills,) = [name for name in names if name.endswith("-bills.csv")]
    return next(r for r in bill_rows(connected, bills) if r["FreshBooks Bill ID"] == str(bill_id))


def live_bills(connected: Connected) -> list[int]:
    bills = connected.freshbooks.data.bills
    return sorted(bill_id for bill_id, bill in bills.items() if bill.get("vis_state", 0) != 1)


def document_name(content: bytes, extension: str) -> str:
    return f"fbstampli_document_{hashlib.sha256(content).hexdigest()}.{extension}"


def test_a_bill_with_a_pdf_reaches_stampli_with_its_document_before_the_file_naming_it(
    connected: Connected,
) -> None:
    bill_id = live_bills(connected)[0]
    pdf = make_pdf(f"Invoice for bill {bill_id}", 240_000)
    connected.freshbooks.attach_document(bill_id, pdf, "application/pdf")
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    name = document_name(pdf, "pdf")
    assert (connected.inbound / name).read_bytes() == pdf
    names = connected.inbound_files()
    row = row_of(connected, names, bill_id)
    assert row["Document File"] == name
    assert row["Document SHA-256"] == hashlib.sha256(pdf).hexdigest()
    assert row["Document Status"] == "ok"
    (bills,) = [n for n in names if n.endswith("-bills.csv")]
    document_renamed = (connected.inbound / name).stat().st_ctime_ns
    assert document_renamed <= (connected.inbound / bills).stat().st_ctime_ns
    assert not any(p.is_file() for p in (connected.home / "documents").iterdir())  # delivered
    others = [r for r in bill_rows(connected, bills) if r["FreshBooks Bill ID"] != str(bill_id)]
    assert {(r["Document File"], r["Document Status"]) for r in others} == {("", "")}


def test_the_same_bill_synced_again_sends_nothing(connected: Connected) -> None:
    bill_id = live_bills(connected)[0]
    connected.freshbooks.attach_document(bill_id, make_pdf("once", 50_000), "application/pdf")
    assert connected.run("push-bills").code == 0
    before = set(connected.inbound_files())
    asked = len(connected.freshbooks.requests)
    assert connected.run("push-bills").code == 0
    assert connected.run("push-bills", "--full").code == 0
    assert new_files(connected, before) == []
    downloads = [r for r in connected.freshbooks.requests[asked:] if r.path.startswith("/uploads/")]
    assert downloads == []  # the document is known by its reference: not fetched again


def test_a_replaced_document_sends_a_new_version_of_the_bill(connected: Connected) -> None:
    bill_id = live_bills(connected)[0]
    first = make_pdf("first scan", 60_000)
    connected.freshbooks.attach_document(bill_id, first, "application/pdf")
    assert connected.run("push-bills").code == 0
    before = set(connected.inbound_files())
    photo = make_jpeg(150_000, seed=3)
    connected.freshbooks.attach_document(bill_id, photo, "image/jpeg")
    assert connected.run("push-bills").code == 0
    added = new_files(connected, before)
    assert document_name(photo, "jpg") in added
    assert document_name(first, "pdf") not in added
    row = row_of(connected, added, bill_id)
    assert (row["Document File"], row["Document Status"]) == (document_name(photo, "jpg"), "ok")


def test_the_same_bytes_named_by_two_bills_are_sent_once(connected: Connected) -> None:
    first, second = live_bills(connected)[:2]
    statement = make_pdf("one statement for two bills", 80_000)
    connected.freshbooks.attach_document(first, statement, "application/pdf")
    connected.freshbooks.attach_document(second, statement, "application/pdf")
    assert connected.run("push-bills").code == 0
    names = connected.inbound_files()
    assert [n for n in names if n.startswith("fbstampli_document_")] == [
        document_name(statement, "pdf")
    ]
    assert row_of(connected, names, first)["Document File"] == document_name(statement, "pdf")
    assert row_of(connected, names, second)["Document File"] == document_name(statement, "pdf")


def test_an_oversized_or_refused_document_is_flagged_while_the_others_flow(
    connected: Connected,
) -> None:
    big, small, gif = live_bills(connected)[:3]
    fb = connected.freshbooks
    fb.attach_document(big, make_pdf("too big", 1_500_000), "application/pdf")
    fine = make_jpeg(300_000, seed=5)
    fb.attach_document(small, fine, "image/jpeg")
    fb.attach_document(gif, make_gif(), "image/gif")
    result = connected.run("push-bills", env={"FBSTAMPLI_SYNC_DOCUMENT_MAX_MB": "1"})
    assert result.code == 1  # delivered, but a person should look
    assert "sent without their document" in result.stderr
    names = connected.inbound_files()
    assert [n for n in names if n.startswith("fbstampli_document_")] == [document_name(fine, "jpg")]
    assert row_of(connected, names, big)["Document Status"] == "too_large"
    assert row_of(connected, names, big)["Document File"] == ""
    assert row_of(connected, names, gif)["Document Status"] == "refused_type"
    assert row_of(connected, names, small)["Document Status"] == "ok"
    assert len({r["FreshBooks Bill ID"] for n in names if n.endswith("-bills.csv")
                for r in bill_rows(connected, n)}) == len(live_bills(connected))  # fmt: skip
    audit = connected.run("audit", "--bill", str(big))
    assert "document_not_sent" in audit.stdout
    again = connected.run("push-bills", env={"FBSTAMPLI_SYNC_DOCUMENT_MAX_MB": "1"})
    assert (again.code, again.stderr) == (0, "")  # said once, by the run that found it


def test_a_login_that_may_not_read_documents_sends_the_bills_without_them_saying_so_once(
    connected: Connected,
) -> None:
    first, second = live_bills(connected)[:2]
    connected.freshbooks.attach_document(first, make_pdf("a", 30_000), "application/pdf")
    connected.freshbooks.attach_document(second, make_pdf("b", 30_000), "application/pdf")
    connected.freshbooks.uploads.refuse = True
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    assert result.stderr.count("bill documents through the uploads API") == 1
    names = connected.inbound_files()
    assert not [n for n in names if n.startswith("fbstampli_document_")]
    assert row_of(connected, names, first)["Document Status"] == "scope_missing"
    assert row_of(connected, names, second)["Document Status"] == "scope_missing"
    uploads = [r for r in connected.freshbooks.requests if r.path.startswith("/uploads/")]
    assert len(uploads) == 1  # the second bill asked nothing


def test_a_seeded_mixture_of_documents_flows_with_the_oversized_and_refused_ones_flagged(
    connected: Connected,
) -> None:
    limit = 4 * 1024 * 1024  # above every seeded size but the one meant to be over it
    given = connected.freshbooks.seed_documents(max_bytes=limit, seed=11)
    env = {"FBSTAMPLI_SYNC_DOCUMENT_MAX_MB": "4"}
    result = connected.run("push-bills", env=env)
    assert result.code == 1, result.stderr
    names = connected.inbound_files()
    status = {bill_id: row_of(connected, names, bill_id)["Document Status"] for bill_id in given}
    assert status == {
        bill_id: {"pdf over the limit": "too_large", "gif": "refused_type"}.get(what, "ok")
        for bill_id, what in given.items()
    }
    sent = [n for n in names if n.startswith("fbstampli_document_")]
    assert len(sent) == len(given) - 2
    assert {n.rsplit(".", 1)[1] for n in sent} == {"pdf", "jpg"}
    before = set(names)
    assert connected.run("push-bills", "--full", env=env).code == 0
    assert new_files(connected, before) == []


def test_bytes_stampli_has_are_not_sent_again_when_another_bill_names_them_later(
    connected: Connected,
) -> None:
    first, later = live_bills(connected)[:2]
    statement = make_pdf("a statement", 70_000)
    connected.freshbooks.attach_document(first, statement, "application/pdf")
    assert connected.run("push-bills").code == 0
    before = set(connected.inbound_files())
    connected.freshbooks.attach_document(later, statement, "application/pdf")
    assert connected.run("push-bills").code == 0
    added = new_files(connected, before)
    assert not [n for n in added if n.startswith("fbstampli_document_")]
    assert row_of(connected, added, later)["Document File"] == document_name(statement, "pdf")
    assert list((connected.home / "documents").iterdir()) == []  # no copy kept of sent bytes
