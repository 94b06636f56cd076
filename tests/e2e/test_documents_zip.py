"""The ZIP layout (issue 26): a template with `documents = "zip"` sends each bills file in a
ZIP holding it and the documents its rows name, Coupa's convention; the real CLI, the
FreshBooks sandbox's uploads API and a real SFTP server."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from fbstampli.sandbox.documents import make_jpeg, make_pdf
from fbstampli.sandbox.stampli import StampliSimulator
from tests.e2e.conftest import Connected
from tests.e2e.test_crash import expected, kill_while_held, sftp_hold
from tests.e2e.test_documents import document_name, live_bills

MB = 1024 * 1024
TEMPLATE = Path(__file__).resolve().parents[2] / "fbstampli/stampli/templates/default.toml"
DOCUMENTS = Path("documents")


def zip_layout(tmp_path: Path, max_mb: int = 8) -> dict[str, str]:
    """The default template in the ZIP layout, ZIPs of at most `max_mb`."""
    text = TEMPLATE.read_text(encoding="utf-8")
    text = text.replace('documents = "files"', 'documents = "zip"')
    text = text.replace("zip_max_mb = 8", f"zip_max_mb = {max_mb}")
    template = tmp_path / "zip-layout.toml"
    template.write_text(text, encoding="utf-8")
    return {"FBSTAMPLI_STAMPLI_TEMPLATE": str(template)}


def read_zip(path: Path) -> tuple[str, list[dict[str, str]], dict[str, bytes]]:
    """The bills file's name and rows inside a ZIP, and the documents beside it."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        (inner,) = [n for n in names if not n.startswith("fbstampli_document_")]
        rows = list(csv.DictReader(io.StringIO(archive.read(inner).decode("utf-8"))))
        documents = {n: archive.read(n) for n in names if n != inner}
    return inner, rows, documents


def zips(connected: Connected) -> list[str]:
    return [n for n in connected.inbound_files() if n.endswith("-bills.zip")]


def bill_ids(rows: list[dict[str, str]]) -> set[str]:
    return {row["FreshBooks Bill ID"] for row in rows}


def test_the_zip_layout_delivers_one_zip_holding_the_bills_file_and_its_documents(
    connected: Connected, tmp_path: Path
) -> None:
    pdf_bill, photo_bill = live_bills(connected)[:2]
    pdf, photo = make_pdf("Invoice in a ZIP", 300_000), make_jpeg(120_000, seed=4)
    connected.freshbooks.attach_document(pdf_bill, pdf, "application/pdf")
    connected.freshbooks.attach_document(photo_bill, photo, "image/jpeg")
    result = connected.run("push-bills", env=zip_layout(tmp_path))
    assert result.code == 0, result.stderr
    names = connected.inbound_files()
    assert not [n for n in names if n.startswith("fbstampli_document_")]  # inside, not beside
    assert not [n for n in names if n.endswith("-bills.csv")]
    (archive,) = zips(connected)
    inner, rows, documents = read_zip(connected.inbound / archive)
    assert inner == archive.removesuffix(".zip") + ".csv"
    assert documents == {document_name(pdf, "pdf"): pdf, document_name(photo, "jpg"): photo}
    assert bill_ids(rows) == {str(b) for b in live_bills(connected)}
    named = {r["FreshBooks Bill ID"]: r["Document File"] for r in rows if r["Document File"]}
    assert named == {
        str(pdf_bill): document_name(pdf, "pdf"),
        str(photo_bill): document_name(photo, "jpg"),
    }
    assert {r["Document SHA-256"] for r in rows if r["Document File"]} == {
        hashlib.sha256(pdf).hexdigest(),
        hashlib.sha256(photo).hexdigest(),
    }
    assert any(n.endswith("-vendors.csv") for n in names)  # masters stay plain files
    assert list((connected.home / DOCUMENTS).iterdir()) == []  # delivered: no copy kept
    simulator = StampliSimulator(connected.sftp.root)  # Stampli's stand-in reads the ZIP
    assert set(simulator.inbound_bills()) == set(live_bills(connected))


def test_a_batch_over_the_zip_limit_goes_as_several_self_contained_zips(
    connected: Connected, tmp_path: Path
) -> None:
    bills = live_bills(connected)[:5]
    sent = {bill_id: make_pdf(f"scan {bill_id}", 380_000, seed=bill_id) for bill_id in bills}
    for bill_id, content in sent.items():
        connected.freshbooks.attach_document(bill_id, content, "application/pdf")
    result = connected.run("push-bills", env=zip_layout(tmp_path, max_mb=1))
    assert result.code == 0, result.stderr
    archives = zips(connected)
    assert len(archives) == 3  # two 380 kB scans fit in 1 MB, three do not
    carried: Counter[str] = Counter()
    rows_seen: Counter[str] = Counter()
    for archive in archives:
        assert (connected.inbound / archive).stat().st_size <= MB
        _, rows, documents = read_zip(connected.inbound / archive)
        named = {r["Document File"] for r in rows if r["Document File"]}
        assert named == set(documents)  # exactly the rows whose documents it carries
        carried.update(list(documents))
        rows_seen.update(bill_ids(rows))
    assert carried == Counter({document_name(c, "pdf"): 1 for c in sent.values()})
    assert rows_seen == Counter({str(b): 1 for b in live_bills(connected)})


def test_a_document_larger_than_a_zip_is_flagged_and_its_bill_still_delivered(
    connected: Connected, tmp_path: Path
) -> None:
    big, small = live_bills(connected)[:2]
    connected.freshbooks.attach_document(big, make_pdf("huge", 1_200_000), "application/pdf")
    fine = make_jpeg(200_000, seed=8)
    connected.freshbooks.attach_document(small, fine, "image/jpeg")
    result = connected.run("push-bills", env=zip_layout(tmp_path, max_mb=1))
    assert result.code == 1, result.stderr  # delivered, but a person should look
    assert "sent without their document" in result.stderr
    (archive,) = zips(connected)
    _, rows, documents = read_zip(connected.inbound / archive)
    assert list(documents) == [document_name(fine, "jpg")]
    row = next(r for r in rows if r["FreshBooks Bill ID"] == str(big))
    assert (row["Document File"], row["Document Status"]) == ("", "too_large")
    assert bill_ids(rows) == {str(b) for b in live_bills(connected)}


def test_the_same_bill_synced_again_sends_nothing_in_the_zip_layout(
    connected: Connected, tmp_path: Path
) -> None:
    env = zip_layout(tmp_path)
    bill_id = live_bills(connected)[0]
    connected.freshbooks.attach_document(bill_id, make_pdf("once", 50_000), "application/pdf")
    assert connected.run("push-bills", env=env).code == 0
    before = connected.inbound_files()
    assert connected.run("push-bills", env=env).code == 0
    assert connected.run("push-bills", "--full", env=env).code == 0
    assert connected.inbound_files() == before


def test_a_document_stampli_has_is_named_by_a_later_zip_not_sent_again(
    connected: Connected, tmp_path: Path
) -> None:
    env = zip_layout(tmp_path)
    first, later = live_bills(connected)[:2]
    statement = make_pdf("one statement", 70_000)
    connected.freshbooks.attach_document(first, statement, "application/pdf")
    assert connected.run("push-bills", env=env).code == 0
    before = set(zips(connected))
    connected.freshbooks.attach_document(later, statement, "application/pdf")
    assert connected.run("push-bills", env=env).code == 0
    (added,) = set(zips(connected)) - before
    _, rows, documents = read_zip(connected.inbound / added)
    assert documents == {}
    assert [r["Document File"] for r in rows] == [document_name(statement, "pdf")] * len(rows)


def test_a_dry_run_in_the_zip_layout_writes_the_bills_file_it_would_zip(
    connected: Connected, tmp_path: Path
) -> None:
    result = connected.run("push-bills", "--dry-run", env=zip_layout(tmp_path))
    assert result.code == 0, result.stderr
    written = sorted(p.name for p in (connected.home / "dry-run").iterdir())
    assert any(name.endswith("-bills.csv") for name in written)
    assert "-bills.zip" in result.stdout + result.stderr  # what would be uploaded
    assert connected.inbound_files() == []


def zip_delivered(connected: Connected) -> Counter[tuple[str, str]]:
    """(kind, id) -> how many files carried it, reading bills inside the ZIPs."""
    seen: Counter[tuple[str, str]] = Counter()
    for name in connected.inbound_files():
        path = connected.inbound / name
        if name.endswith("-bills.zip"):
            rows = read_zip(path)[1]
            seen.update(("bill", fb_id) for fb_id in bill_ids(rows))
            continue
        for suffix, kind, column in (
            ("-vendors.csv", "vendor", "FreshBooks Vendor ID"),
            ("-payments.csv", "payment", "FreshBooks Payment ID"),
        ):
            if name.endswith(suffix):
                rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
                seen.update((kind, fb_id) for fb_id in {r[column] for r in rows})
    return seen


KILL_POINTS = {
    "mid-upload of a ZIP": "*-bills.zip.part",
    "after a ZIP's rename, before its commit": "renamed:*-bills.zip",
}


@pytest.mark.cli_process
@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_push_in_the_zip_layout_delivers_each_bill_and_document_once(
    connected: Connected, tmp_path: Path, point: str
) -> None:
    env = zip_layout(tmp_path, max_mb=1)
    documents = [make_pdf("first", 400_000), make_jpeg(300_000), make_pdf("third", 350_000)]
    for bill_id, content in zip(live_bills(connected), documents, strict=False):
        media = "application/pdf" if content.startswith(b"%PDF") else "image/jpeg"
        connected.freshbooks.attach_document(bill_id, content, media)
    hold, reached = sftp_hold(KILL_POINTS[point])(connected)
    kill_while_held(connected, hold, reached, env=env)
    result = connected.run("push-bills", env=env)
    assert result.code == 0, result.stderr
    seen = zip_delivered(connected)
    assert set(seen) == expected(connected)  # 0 lost
    assert [key for key, count in seen.items() if count != 1] == []  # 0 duplicated
    assert not [name for name in connected.inbound_files() if name.endswith(".part")]
    carried: Counter[bytes] = Counter()
    for archive in zips(connected):
        carried.update(read_zip(connected.inbound / archive)[2].values())
    assert carried == Counter(documents)  # each document once, byte for byte
    assert list((connected.home / DOCUMENTS).iterdir()) == []  # no copy, no half-built ZIP
