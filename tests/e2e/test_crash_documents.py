"""kill -9 trials with bills' documents (issue 26): killed while a document is downloaded,
uploaded or just renamed, the next run delivers every bill once and every document once."""

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from fbstampli.sandbox.documents import make_jpeg, make_pdf
from tests.e2e.conftest import Connected
from tests.e2e.test_crash import delivered, expected, kill_while_held, sftp_hold

pytestmark = [pytest.mark.cli_process, pytest.mark.slow]  # kill -9 of the CLI; 7-10 s each


def uploads_hold() -> Callable[[Connected], tuple[AbstractContextManager, Callable]]:
    def make(c: Connected) -> tuple[AbstractContextManager, Callable]:
        hold = c.freshbooks.hold("/uploads/attachments/", method="GET")

        class Holding(AbstractContextManager):
            def __enter__(self):
                return hold

            def __exit__(self, *exc):
                hold.release()

        return Holding(), lambda held: held.arrived

    return make


KILL_POINTS = {
    "while downloading a document": uploads_hold(),
    "mid-upload of a document": sftp_hold("*.pdf.part"),
    "after a document's rename, before its commit": sftp_hold("renamed:fbstampli_document_*"),
    "mid-upload of the bills file naming them": sftp_hold("*-bills.csv.part"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_push_with_documents_delivers_each_bill_and_document_once(
    connected: Connected, point: str
) -> None:
    bills = sorted(connected.freshbooks.data.bills)
    documents = [make_pdf("first", 400_000), make_jpeg(200_000), make_pdf("third", 90_000)]
    for bill_id, content in zip(bills, documents, strict=False):
        media = "application/pdf" if content.startswith(b"%PDF") else "image/jpeg"
        connected.freshbooks.attach_document(bill_id, content, media)
    hold, reached = KILL_POINTS[point](connected)
    kill_while_held(connected, hold, reached)
    result = connected.run("push-bills")
    assert result.code == 0, result.stderr
    seen = delivered(connected)
    assert set(seen) == expected(connected)
    assert [key for key, count in seen.items() if count != 1] == []
    names = connected.inbound_files()
    assert not [name for name in names if name.endswith(".part")]
    sent = sorted(name for name in names if name.startswith("fbstampli_document_"))
    assert len(sent) == len(documents)
    for content in documents:
        assert any((connected.inbound / name).read_bytes() == content for name in sent)
    assert list((connected.home / "documents").iterdir()) == []  # delivered, litter cleared
