"""Stampli's side remembers too: the marker on the SFTP server names the state that
delivered and its last batch, so a new, emptied or older state sends nothing twice."""

import csv
import io
import json
import signal
from pathlib import Path

import pytest

from fbstampli.sandbox.documents import make_pdf
from fbstampli.sandbox.freshbooks import FreshBooksSandbox
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.sync.marker import is_marker_name
from tests.e2e.conftest import Connected, connect_quickly
from tests.e2e.invariants import check_push
from tests.support.cli import one_line, start


def marker_path(connected: Connected) -> Path:
    (path,) = [
        p for p in connected.inbound.iterdir() if is_marker_name(p.name) and p.suffix == ".json"
    ]
    return path


def marker(connected: Connected) -> dict:
    return json.loads(marker_path(connected).read_text())


def edit_a_bill(connected: Connected, number: str) -> int:
    bill_id = sorted(connected.freshbooks.data.bills)[0]
    connected.freshbooks.update_bill(bill_id, bill_number=number)
    return bill_id


def versions_sent(connected: Connected, bill_id: int) -> list[int]:
    """The Version cells of every row sent for one bill, in file order."""
    found = []
    for name in connected.inbound_files():
        if name.endswith("-bills.csv"):
            text = (connected.inbound / name).read_text(encoding="utf-8")
            found += [
                int(row["Version"])
                for row in csv.DictReader(io.StringIO(text))
                if row["FreshBooks Bill ID"] == str(bill_id)
            ]
    return found


def carrying(connected: Connected, text: str) -> list[str]:
    return [
        name
        for name in connected.inbound_files()
        if name.endswith("-bills.csv") and text in (connected.inbound / name).read_text()
    ]


def refused(connected: Connected, before: list[str], *, why: str) -> None:
    result = connected.run("-q", "sync")
    assert result.code == 4, result.output
    assert one_line(result.stderr), result.stderr
    assert result.stderr.startswith("fbstampli: error: "), result.stderr
    assert why in result.stderr
    assert "`fbstampli state restore`" in result.stderr
    assert "`fbstampli state adopt-remote`" in result.stderr
    assert connected.inbound_files() == before  # nothing sent


def a_new_state(
    tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> Connected:
    """The same business and SFTP server from a state made afresh, as after a lost disk."""
    return connect_quickly(tmp_path / "new-home", freshbooks, sftp_server)


def test_the_first_sync_leaves_a_dot_named_marker_with_the_state_id_and_last_batch(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    found = marker(connected)
    assert marker_path(connected).name == f".fbstampli-{connected.freshbooks.account_id}.json"
    assert found["last_batch"] == 5  # categories, taxes, vendors, bills, payments
    assert len(found["state_id"]) == 36
    assert not [n for n in connected.inbound_files() if n.startswith(".")]


def test_a_new_state_against_an_old_marker_sends_nothing(
    connected: Connected, tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    assert connected.run("sync").code == 0
    before = connected.inbound_files()
    fresh = a_new_state(tmp_path, freshbooks, sftp_server)
    refused(fresh, before, why="is not the one that delivered to Stampli")
    refused(fresh, before, why="is not the one that delivered to Stampli")  # and again


def test_an_older_backup_is_refused_and_sends_nothing(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    backup = connected.home.parent / "monday.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    edit_a_bill(connected, "EDITED-AFTER-BACKUP")
    assert connected.run("sync").code == 0
    before = connected.inbound_files()
    assert len(carrying(connected, "EDITED-AFTER-BACKUP")) == 1
    assert connected.run("state", "restore", "--force", str(backup)).code == 0
    refused(connected, before, why="this state is older than what Stampli received")


def test_adopt_remote_sends_nothing_twice_and_later_changes_flow(
    connected: Connected, tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    assert connected.run("sync").code == 0
    edit_a_bill(connected, "SENT-BY-THE-OLD-STATE")
    assert connected.run("sync").code == 0
    old = marker(connected)
    fresh = a_new_state(tmp_path, freshbooks, sftp_server)
    before = fresh.inbound_files()
    refused(fresh, before, why="is not the one that delivered")

    not_asked = fresh.run("state", "adopt-remote")  # no terminal, no --yes
    assert not_asked.code == 2
    assert "--yes" in not_asked.stderr
    adopted = fresh.run("state", "adopt-remote", "--yes")
    assert adopted.code == 0, adopted.output
    assert "none sent" in adopted.stdout
    adopted_marker = marker(fresh)
    assert adopted_marker["state_id"] != old["state_id"]

    assert fresh.run("sync").code == 0
    assert fresh.inbound_files() == before  # 0 duplicates
    assert check_push(freshbooks, sftp_server.root).duplicated == []

    bill_id = edit_a_bill(fresh, "AFTER-ADOPTION")
    sent_before = versions_sent(fresh, bill_id)
    assert fresh.run("sync").code == 0
    assert len(carrying(fresh, "AFTER-ADOPTION")) == 1
    # Numbered above every version the old state sent, so Stampli takes it as the newest.
    assert versions_sent(fresh, bill_id)[-1] > max(sent_before)
    outcome = check_push(freshbooks, sftp_server.root)
    assert outcome.duplicated == []
    assert outcome.lost == []
    assert marker(fresh)["last_batch"] > adopted_marker["last_batch"]
    # The old state is no longer the one Stampli's side names.
    refused(connected, fresh.inbound_files(), why="is not the one that delivered")


def test_adopt_remote_takes_bills_documents_as_in_stampli_too(
    connected: Connected, tmp_path: Path, freshbooks: FreshBooksSandbox, sftp_server: SftpServer
) -> None:
    """A bill's document is part of what Stampli holds: after adoption the next sync sends
    neither the bill again (its rows name the document) nor the document's bytes."""
    bill_id = sorted(freshbooks.data.bills)[0]
    freshbooks.attach_document(bill_id, make_pdf("adopted", 40_000), "application/pdf")
    assert connected.run("sync").code == 0
    fresh = a_new_state(tmp_path, freshbooks, sftp_server)
    before = fresh.inbound_files()
    adopted = fresh.run("state", "adopt-remote", "--yes")
    assert adopted.code == 0, adopted.output
    synced = fresh.run("sync")
    assert synced.code == 0, synced.output
    assert fresh.inbound_files() == before  # 0 duplicates: no bill, no document again
    assert check_push(freshbooks, sftp_server.root).duplicated == []


def test_a_deleted_marker_is_written_again_and_nothing_is_sent_again(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    first = marker(connected)
    marker_path(connected).unlink()
    before = set(connected.inbound_files())
    edit_a_bill(connected, "AFTER-CLEAN-UP")
    assert connected.run("sync").code == 0
    new = sorted(set(connected.inbound_files()) - before)
    assert [name for name in new if name.endswith("-bills.csv")] == carrying(
        connected, "AFTER-CLEAN-UP"
    )
    assert check_push(connected.freshbooks, connected.sftp.root).duplicated == []
    again = marker(connected)
    assert again["state_id"] == first["state_id"]
    assert again["last_batch"] == first["last_batch"] + len(new)


def test_a_marker_behind_the_state_is_accepted_and_brought_forward(
    connected: Connected,
) -> None:
    """What a kill between a batch's commit and the marker's write leaves."""
    assert connected.run("sync").code == 0
    path = marker_path(connected)
    behind = json.loads(path.read_text())
    behind["last_batch"] -= 1
    path.write_text(json.dumps(behind))
    before = set(connected.inbound_files())
    edit_a_bill(connected, "AFTER-A-LAGGING-MARKER")
    assert connected.run("sync").code == 0
    new = set(connected.inbound_files()) - before
    assert marker(connected)["last_batch"] == behind["last_batch"] + 1 + len(new)
    assert check_push(connected.freshbooks, connected.sftp.root).duplicated == []


@pytest.mark.cli_process
def test_killed_between_the_commit_and_the_marker_write_the_next_run_goes_on(
    connected: Connected,
) -> None:
    assert connected.run("sync").code == 0
    last = marker(connected)["last_batch"]
    # A version bound already ahead (it may be) spares the write before the uploads, so the
    # first write the hold meets is the one after the batch's commit.
    ahead = {**marker(connected), "version_bound": 10**6}
    marker_path(connected).write_text(json.dumps(ahead))
    edit_a_bill(connected, "KILLED-BEFORE-THE-MARKER")
    with connected.sftp.hold("*.json.part") as held:  # the marker's write, after the commit
        process = start(connected.home, "push-bills")
        try:
            assert held.reached.wait(30), "the push never wrote the marker"
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert marker(connected)["last_batch"] == last  # the state is ahead of it now
    assert len(carrying(connected, "KILLED-BEFORE-THE-MARKER")) == 1
    result = connected.run("sync")
    assert result.code == 0, result.output
    assert len(carrying(connected, "KILLED-BEFORE-THE-MARKER")) == 1
    assert marker(connected)["last_batch"] > last
    assert not [p for p in connected.inbound.iterdir() if p.name.endswith(".part")]
    assert check_push(connected.freshbooks, connected.sftp.root).duplicated == []
