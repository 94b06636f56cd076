"""The ZIP layout (issue 26): names, the split of a batch into ZIPs within the limit, the
same bytes for the same batch, the template options that choose it, and a ZIP batch's
journal over a real store and the in-memory SFTP."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from fbstampli.errors import TemplateError
from fbstampli.models import Kind
from fbstampli.models.documents import Document, DocumentOutcome, Media
from fbstampli.stampli.template import load_template, parse_template
from fbstampli.store import Row, Store, outbox
from fbstampli.store.documents import DocumentFile, DocumentState, record_outcome
from fbstampli.sync.deliver import advance_batch
from fbstampli.sync.documents import DocumentFolder, DocumentUploadError
from fbstampli.sync.zips import (
    CSV_RESERVE,
    build_zip,
    document_limit,
    inner_name,
    split,
    zip_name,
)
from tests.support.fakes import MemoryTransport

MB = 1024 * 1024
DEFAULT = Path(__file__).resolve().parents[2] / "fbstampli/stampli/templates/default.toml"


def test_a_zip_is_named_after_its_bills_file_and_holds_it_under_its_format_s_ending() -> None:
    name = zip_name("fbstampli_acme_20261207T101500Z_b000007_2-bills.csv")
    assert name == "fbstampli_acme_20261207T101500Z_b000007_2-bills.zip"
    assert inner_name(name, b"FreshBooks Bill ID\r\n1\r\n") == name[:-4] + ".csv"
    assert inner_name(name, b'<?xml version="1.0"?><records/>') == name[:-4] + ".xml"
    assert zip_name("bills_{b000001}") == "bills_{b000001}.zip"  # no ending to replace


def test_a_batch_is_split_where_the_next_document_would_pass_the_limit() -> None:
    costs = [(100, {"a.pdf": 400_000}), (100, {"b.pdf": 400_000}), (100, {"c.pdf": 400_000})]
    assert split(costs, limit=MB, fixed=1000) == [range(0, 2), range(2, 3)]


def test_a_document_two_bills_name_counts_once_in_a_zip() -> None:
    costs = [(100, {"a.pdf": 600_000}), (100, {"a.pdf": 600_000}), (100, {})]
    assert split(costs, limit=MB, fixed=1000) == [range(0, 3)]


def test_rows_alone_split_a_batch_too_and_one_member_over_the_limit_goes_alone() -> None:
    assert split([(700_000, {}), (700_000, {})], limit=MB, fixed=1000) == [range(0, 1), range(1, 2)]
    assert split([(10, {"huge.pdf": 2 * MB}), (10, {})], limit=MB, fixed=0) == [
        range(0, 1),
        range(1, 2),
    ]


def test_a_document_is_fetched_only_if_it_fits_a_zip_beside_its_bills_file() -> None:
    assert document_limit(25 * MB, None) == 25 * MB
    assert document_limit(25 * MB, 8 * MB) == 8 * MB - CSV_RESERVE
    assert document_limit(2 * MB, 8 * MB) == 2 * MB


def test_the_same_batch_builds_the_same_zip_bytes(tmp_path: Path) -> None:
    scan = tmp_path / "fbstampli_document_x.pdf"
    scan.write_bytes(b"%PDF-1.7 " + bytes(range(256)) * 400)
    document = DocumentFile("x", scan.name, scan.stat().st_size, str(scan), DocumentState.FETCHED)
    built = []
    for _ in range(2):
        out = io.BytesIO()
        build_zip(
            out, "bills.csv", b"id,Document File\r\n1,fbstampli_document_x.pdf\r\n", [document]
        )
        built.append(out.getvalue())
    assert built[0] == built[1]
    with zipfile.ZipFile(io.BytesIO(built[0])) as archive:
        assert archive.namelist() == ["bills.csv", scan.name]
        assert archive.read(scan.name) == scan.read_bytes()
        assert archive.testzip() is None


def test_the_template_chooses_the_layout_and_the_zip_limit() -> None:
    assert load_template(None).zip_limit is None  # the default: documents as their own files
    text = DEFAULT.read_text().replace('documents = "files"', 'documents = "zip"')
    assert parse_template(text).zip_limit == 8 * MB
    assert parse_template(text.replace("zip_max_mb = 8", "zip_max_mb = 2")).zip_limit == 2 * MB


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'documents = "files"',
            'documents = "zips"',
            "template.documents: must be 'files' or 'zip'",
        ),
        ("zip_max_mb = 8", "zip_max_mb = 0", "template.zip_max_mb: must be between 1 and 10000"),
        ("zip_max_mb = 8", "zip_max_mb = 2.5", "template.zip_max_mb: must be a whole number"),
        ("{kinds}.csv", "{kinds}.zip", "template.file_name: must not end in '.zip'"),
    ],
)
def test_a_bad_documents_option_is_named(old: str, new: str, message: str) -> None:
    text = DEFAULT.read_text()
    assert old in text
    with pytest.raises(TemplateError, match=message):
        parse_template(text.replace(old, new))


def zip_batch(store: Store, scan: Path) -> Row:
    """A planned bills batch in the ZIP layout whose one row names the document `scan`."""
    data = scan.read_bytes()
    document = Document(hashlib.sha256(data).hexdigest(), len(data), Media.PDF)
    with store.transaction():
        record_outcome(store, 10, DocumentOutcome("jwt-10", document=document), str(scan))
        content = f"FreshBooks Bill ID,Document File\r\n10,{document.file_name}\r\n".encode()
        outbox.add_batch(
            store,
            batch_id=1,
            kind=Kind.BILL,
            file_name="fbstampli_acme_20261207T101500Z_b000001_2-bills.zip",
            directory="inbound",
            sha256=hashlib.sha256(content).hexdigest(),
            content=content,
            delivery_ids=[],
        )
    row = outbox.batch(store, 1)
    assert row is not None
    return row


def test_a_zip_batch_carries_its_document_and_removes_the_copy_once_delivered(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    scan = folder / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7 a scan")
    remote = MemoryTransport()
    advance_batch(store, remote, zip_batch(store, scan), None, DocumentFolder(folder))
    name = "fbstampli_acme_20261207T101500Z_b000001_2-bills.zip"
    with zipfile.ZipFile(io.BytesIO(remote.folder("inbound")[name])) as archive:
        assert archive.read(archive.namelist()[1]) == b"%PDF-1.7 a scan"
    assert list(folder.iterdir()) == []  # no copy kept, no half-built ZIP left


def test_a_zip_whose_document_copy_is_gone_waits_naming_the_fix(
    store: Store, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(b"%PDF-1.7 a scan")
    batch = zip_batch(store, scan)
    scan.unlink()
    remote = MemoryTransport()
    with pytest.raises(DocumentUploadError, match="restore the home's documents folder"):
        advance_batch(store, remote, batch, None, DocumentFolder(tmp_path))
    assert remote.folder("inbound") == {}
