"""A bill's document fetched from the FreshBooks sandbox's uploads API over real HTTP:
streamed to a private file and judged by its bytes, every failure an outcome (issue 26)."""

from __future__ import annotations

import hashlib
import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fbstampli.freshbooks.client import FreshBooksClient
from fbstampli.models.behaviour import DOCUMENTS
from fbstampli.models.documents import DEFAULT_MAX_BYTES, DocumentProblem, Media
from fbstampli.sandbox.documents import make_gif, make_jpeg, make_pdf
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from tests.e2e.test_freshbooks_sandbox import Harness, make_harness


@pytest.fixture
def harness() -> Iterator[Harness]:
    with FreshBooksSandbox() as fb:
        fb.seed(vendors=2, bills=4, payments=0)
        made = make_harness(fb)
        made.login()
        yield made
        made.session.close()


@pytest.fixture
def client(harness: Harness) -> Iterator[FreshBooksClient]:
    made = harness.client()
    yield made
    made.close()


def uploads_asked(harness: Harness) -> int:
    return sum(1 for r in harness.fb.requests if r.path.startswith("/uploads/attachments/"))


def attached(harness: Harness, client: FreshBooksClient, content: bytes, media: str) -> str:
    """Attach `content` to the first bill; the JWT as the client reads it from the bill."""
    bill_id = min(harness.fb.data.bills)
    harness.fb.attach_document(bill_id, content, media)
    bill = client.get_bill(bill_id)
    assert bill is not None
    return bill.attachment_jwt


@pytest.mark.parametrize(
    ("content", "media"),
    [
        (make_pdf("Invoice B-00001 from Acme", 240_000), Media.PDF),
        (make_jpeg(95_000), Media.JPEG),
    ],
)
def test_a_bills_document_is_streamed_to_a_private_file_named_by_nothing_the_server_says(
    harness: Harness, client: FreshBooksClient, tmp_path: Path, content: bytes, media: Media
) -> None:
    jwt = attached(harness, client, content, "application/pdf")  # the stated type is not believed
    dest = tmp_path / "download"
    outcome = client.download_document(jwt, dest, max_bytes=DEFAULT_MAX_BYTES)
    assert outcome.problem is None
    assert outcome.document is not None
    assert outcome.document.media is media
    assert outcome.document.size == len(content)
    assert outcome.document.sha256 == hashlib.sha256(content).hexdigest()
    assert outcome.document.file_name == f"fbstampli_document_{outcome.document.sha256}.{media}"
    assert dest.read_bytes() == content
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert client.learnt.value(DOCUMENTS) == "allowed"


def test_a_bill_without_a_document_names_none(harness: Harness, client: FreshBooksClient) -> None:
    bill = client.get_bill(min(harness.fb.data.bills))
    assert bill is not None
    assert bill.attachment_jwt == ""


@pytest.mark.parametrize(
    ("content", "max_bytes", "problem"),
    [
        (make_pdf("big", 400_000), 300_000, DocumentProblem.TOO_LARGE),
        (make_gif(), DEFAULT_MAX_BYTES, DocumentProblem.REFUSED_TYPE),
        (b"<html><body>%PDF-</body></html>", DEFAULT_MAX_BYTES, DocumentProblem.REFUSED_TYPE),
    ],
)
def test_a_document_too_large_or_of_a_refused_type_leaves_no_file(
    harness: Harness,
    client: FreshBooksClient,
    tmp_path: Path,
    content: bytes,
    max_bytes: int,
    problem: DocumentProblem,
) -> None:
    jwt = attached(harness, client, content, "application/pdf")
    dest = tmp_path / "download"
    outcome = client.download_document(jwt, dest, max_bytes=max_bytes)
    assert (outcome.document, outcome.problem) == (None, problem)
    assert not dest.exists()


def test_a_document_over_the_limit_is_cut_off_while_streaming_without_a_stated_length(
    harness: Harness, client: FreshBooksClient, tmp_path: Path
) -> None:
    """A server that states no length (chunked) is stopped at the limit, not read to the end."""
    harness.fb.uploads.state_length = False
    jwt = attached(harness, client, make_jpeg(2_000_000), "image/jpeg")
    dest = tmp_path / "download"
    outcome = client.download_document(jwt, dest, max_bytes=1_000_000)
    assert outcome.problem is DocumentProblem.TOO_LARGE
    assert not dest.exists()
    small = client.download_document(jwt, tmp_path / "b", max_bytes=DEFAULT_MAX_BYTES)
    assert small.document is not None  # the same chunked answer, under the limit, is whole
    assert small.document.size == 2_000_000


def test_a_refused_download_is_learnt_said_once_and_not_asked_again_that_day(
    harness: Harness,
    client: FreshBooksClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwt = attached(harness, client, make_pdf("x", 20_000), "application/pdf")
    harness.fb.uploads.refuse = True
    with caplog.at_level(logging.WARNING):
        first = client.download_document(jwt, tmp_path / "a", max_bytes=DEFAULT_MAX_BYTES)
        asked = uploads_asked(harness)
        second = client.download_document(jwt, tmp_path / "b", max_bytes=DEFAULT_MAX_BYTES)
    assert first.problem is second.problem is DocumentProblem.SCOPE_MISSING
    assert client.learnt.value(DOCUMENTS) == "refused"
    assert uploads_asked(harness) == asked  # the second bill asked nothing
    warnings = [r.getMessage() for r in caplog.records if "uploads API" in r.getMessage()]
    assert len(warnings) == 1
    assert "without their documents" in warnings[0]
    assert jwt not in caplog.text


def test_an_unknown_document_is_missing_and_a_reference_that_is_no_token_asks_nothing(
    harness: Harness, client: FreshBooksClient, tmp_path: Path
) -> None:
    gone = client.download_document("abc.def.ghi", tmp_path / "a", max_bytes=DEFAULT_MAX_BYTES)
    assert gone.problem is DocumentProblem.MISSING
    asked = uploads_asked(harness)
    odd = client.download_document("../../etc/passwd", tmp_path / "b", max_bytes=100)
    assert odd.problem is DocumentProblem.MISSING
    assert uploads_asked(harness) == asked


def test_a_failing_download_is_retried_then_given_up_as_an_outcome(
    harness: Harness, client: FreshBooksClient, tmp_path: Path
) -> None:
    content = make_pdf("retry", 30_000)
    jwt = attached(harness, client, content, "application/pdf")
    harness.fb.fail("/uploads/attachments/", times=2, status=503)
    ok = client.download_document(jwt, tmp_path / "a", max_bytes=DEFAULT_MAX_BYTES)
    assert ok.document is not None
    assert ok.document.sha256 == hashlib.sha256(content).hexdigest()
    harness.fb.fail("/uploads/attachments/", times=100, status=503)
    failed = client.download_document(jwt, tmp_path / "b", max_bytes=DEFAULT_MAX_BYTES)
    assert failed.problem is DocumentProblem.DOWNLOAD_FAILED
    assert not (tmp_path / "b").exists()


def test_an_expired_access_token_is_refreshed_once_for_a_download(
    harness: Harness, client: FreshBooksClient, tmp_path: Path
) -> None:
    jwt = attached(harness, client, make_pdf("refresh", 20_000), "application/pdf")
    harness.fb.expire_access_tokens()
    outcome = client.download_document(jwt, tmp_path / "a", max_bytes=DEFAULT_MAX_BYTES)
    assert outcome.document is not None
    assert client.learnt.value(DOCUMENTS) == "allowed"
