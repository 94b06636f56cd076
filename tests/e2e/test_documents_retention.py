"""How long a bill's document stays in the home (issue 26): 0600, only until delivered by
default; `sync.document_retention_days` keeps a delivered copy that many days, and a later
run removes it once they are up. The real CLI, the sandboxes, the real encrypted state."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.sandbox.documents import make_pdf
from fbstampli.store import open_state
from tests.e2e.conftest import Connected
from tests.e2e.test_documents import document_name, live_bills
from tests.e2e.test_documents_zip import zip_layout

LAYOUTS = ("files", "zip")


def age_deliveries(connected: Connected, days: int) -> None:
    """Make every delivered document look delivered `days` ago (the state's own clock)."""
    store, _ = open_state(connected.home / "state.db", {}, SystemClock())
    try:
        with store.transaction():
            store.execute(
                "UPDATE document_files SET updated_at = "
                "strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', ?) WHERE state = 'delivered'",
                (f"-{days} days",),
            )
    finally:
        store.close()


def setup(connected: Connected, tmp_path: Path, layout: str, retention: str) -> dict[str, str]:
    env = {"FBSTAMPLI_SYNC_DOCUMENT_RETENTION_DAYS": retention}
    return env | (zip_layout(tmp_path) if layout == "zip" else {})


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_delivered_document_leaves_the_home_at_once_by_default(
    connected: Connected, tmp_path: Path, layout: str
) -> None:
    pdf = make_pdf("gone once delivered", 40_000)
    connected.freshbooks.attach_document(live_bills(connected)[0], pdf, "application/pdf")
    result = connected.run("push-bills", env=setup(connected, tmp_path, layout, "0"))
    assert result.code == 0, result.stderr
    assert list((connected.home / "documents").iterdir()) == []


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_retention_keeps_the_delivered_copy_until_a_later_run_finds_its_days_up(
    connected: Connected, tmp_path: Path, layout: str
) -> None:
    env = setup(connected, tmp_path, layout, "3")
    pdf = make_pdf("kept three days", 40_000)
    connected.freshbooks.attach_document(live_bills(connected)[0], pdf, "application/pdf")
    assert connected.run("push-bills", env=env).code == 0
    kept = connected.home / "documents" / document_name(pdf, "pdf")
    assert kept.read_bytes() == pdf
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    age_deliveries(connected, 2)
    assert connected.run("push-bills", env=env).code == 0
    assert kept.is_file()  # two days of three: still kept
    age_deliveries(connected, 4)
    before = set(connected.inbound_files())
    assert connected.run("push-bills", env=env).code == 0
    assert list((connected.home / "documents").iterdir()) == []  # removed by the later run
    assert set(connected.inbound_files()) == before  # and nothing sent again


def test_a_negative_retention_is_a_configuration_error_naming_the_key(
    connected: Connected,
) -> None:
    result = connected.run("push-bills", env={"FBSTAMPLI_SYNC_DOCUMENT_RETENTION_DAYS": "-1"})
    assert result.code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("fbstampli: error: ")
    assert "sync.document_retention_days): must be between 0 and 3650" in line
