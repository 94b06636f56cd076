"""A bill in Stampli without its document needs a person (issue 26): `status` names it and
exits 1 (the one attention rule), its JSON counts it by reason, the digest lists it as an
exception; a usable document attached in FreshBooks clears it. Real CLI, real servers."""

from __future__ import annotations

import json

from fbstampli.sandbox.documents import make_gif, make_pdf
from tests.e2e.conftest import Connected
from tests.e2e.test_documents import live_bills
from tests.e2e.test_status import UTC, unpaid  # noqa: F401 - the fixture

ONE_MB = UTC | {"FBSTAMPLI_SYNC_DOCUMENT_MAX_MB": "1"}


def test_bills_sent_without_their_document_need_attention_until_fixed(
    unpaid: Connected,  # noqa: F811 - the fixture imported above
) -> None:
    big, gif = live_bills(unpaid)[:2]
    unpaid.freshbooks.attach_document(big, make_pdf("too big", 1_500_000), "application/pdf")
    unpaid.freshbooks.attach_document(gif, make_gif(), "image/gif")
    assert unpaid.run("sync", env=ONE_MB).code == 1  # the run that found them
    assert unpaid.run("sync", env=ONE_MB).code == 0  # said once: the runs after are quiet
    screen = unpaid.run("status", env=ONE_MB)
    assert screen.code == 1, screen.output
    assert (
        "Documents   2 bills in Stampli without their document (1 refused_type, 1 too_large)"
        in screen.stdout
    )
    assert "Needs attention: 2 bill(s) in Stampli without their document." in screen.stdout
    quiet = unpaid.run("-q", "status", env=ONE_MB)
    assert (quiet.code, quiet.stdout) == (1, "")
    assert "2 bill(s) in Stampli without their document" in quiet.stderr
    document = json.loads(unpaid.run("status", "--json", env=ONE_MB).stdout)
    assert document["deliveries"]["without_document"] == {
        "count": 2,
        "by_reason": {"refused_type": 1, "too_large": 1},
        "bills": sorted([big, gif]),
    }
    digest = unpaid.run("digest", env=ONE_MB)
    assert digest.code == 0, digest.stderr
    assert "Sent to Stampli without their document" in digest.stdout
    assert "the document is larger than the size limit" in digest.stdout

    unpaid.freshbooks.attach_document(big, make_pdf("rescanned", 200_000), "application/pdf")
    unpaid.freshbooks.attach_document(gif, make_pdf("as a PDF", 30_000), "application/pdf")
    assert unpaid.run("sync", env=ONE_MB).code == 0
    after = unpaid.run("status", env=ONE_MB)
    assert after.code == 0, after.output
    assert "without their document" not in after.stdout
