"""What fbstampli writes or reads on the operator's say-so is never turned against the home:
`doctor --api-report` gets the output-path checks of `state backup`, and `state restore`
leaves the backup it reads exactly as it was."""

import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import on_a_terminal, one_line


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    target = tmp_path / "root-owned"
    target.write_text("precious\n")
    os.chmod(target, 0o600)
    return target


def test_api_report_never_replaces_the_homes_files_links_or_devices(
    connected: Connected, victim: Path, tmp_path: Path
) -> None:
    key = connected.home / "state.key"
    key_before = key.read_bytes()
    link = tmp_path / "report.json"
    link.symlink_to(victim)
    for target in (key, connected.home / "state.db", link, Path("/dev/null")):
        result = connected.run("doctor", "--api-report", str(target))
        assert result.code == 2, (target, result.output)
        assert one_line(result.stderr), result.stderr
        assert f"--api-report {target}" in result.stderr
    assert key.read_bytes() == key_before  # once: replaced by the report, the state lost
    assert victim.read_text() == "precious\n"
    assert link.is_symlink()
    assert connected.run("auth", "status").code == 0
    good = tmp_path / "api-report.json"
    written = connected.run("doctor", "--api-report", str(good))
    assert written.code in (0, 1), written.output
    assert good.read_text().startswith("{")
    assert os.stat(good).st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".api-report.json.*"))  # no temporary left behind


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_state_restore_leaves_its_backup_byte_for_byte_and_mode_unchanged(
    connected: Connected, tmp_path: Path
) -> None:
    assert connected.run("sync").code == 0
    backup = tmp_path / "backup.db"
    assert connected.run("state", "backup", str(backup)).code == 0
    os.chmod(backup, 0o644)
    before = (sha256(backup), os.stat(backup).st_mode, sorted(p.name for p in tmp_path.iterdir()))
    restored = connected.run("state", "restore", str(backup))
    assert restored.code == 0, restored.output
    after = (sha256(backup), os.stat(backup).st_mode, sorted(p.name for p in tmp_path.iterdir()))
    assert after == before  # once: opened read-write, migrated, WAL beside it, chmod 0600
    assert connected.run("sync").code == 0  # the restored state works


# ---- Stampli data in tabular reports and on terminals -------------------------------------------

BARE_CR = "STP5\r=1+1"
ESCAPES = "\x1b]0;pwned\x07\x9b31m"


def captured(connected: Connected, invoice_id: str) -> int:
    """A Stampli capture export whose invoice id is `invoice_id`, pulled; the bill's id."""
    from fbstampli.sandbox.stampli import StampliSimulator

    assert connected.run("push-bills").code == 0
    stampli = StampliSimulator(connected.sftp.root)
    bill = min(stampli.inbound_bills().values(), key=lambda b: b.fb_id)
    stampli.invoice_id = lambda bill_id: invoice_id  # type: ignore[method-assign]
    stampli.export_captures([bill])
    pulled = connected.run("pull-stampli", "--now")
    assert pulled.code == 0, pulled.output
    return bill.fb_id


def spreadsheet_rows(text: str) -> list[list[str]]:
    """The rows a spreadsheet reads: a bare CR ends a row unless it is inside quotes."""
    return list(csv.reader(io.StringIO(text, newline="")))


def raw_stdout(home: Path, *args: str) -> str:
    """What the CLI wrote, CR and LF exactly as written (no universal-newline translation)."""
    import subprocess
    import sys

    from tests.support.cli import cli_env

    done = subprocess.run(
        [sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.decode("utf-8")


def test_a_bare_carriage_return_in_stampli_data_cannot_start_a_csv_row(
    connected: Connected,
) -> None:
    fb_id = captured(connected, BARE_CR)
    for args in (
        ("audit", "--bill", str(fb_id), "--format", "csv"),
        ("reconcile", "--format", "csv"),
    ):
        text = raw_stdout(connected.home, *args)
        rows = spreadsheet_rows(text)
        assert len({len(row) for row in rows}) == 1, rows  # once: `=1+1…` began a row
        assert any(BARE_CR in cell for row in rows for cell in row), repr(text)
        assert not [c for row in rows for c in row if c.startswith(("=", "+", "-", "@"))]


@pytest.mark.parametrize(
    ("name", "parsed"), [("r.csv", "csv"), ("r.json", "json"), ("r.txt", "tsv")]
)
def test_reconcile_output_without_format_follows_its_suffix_and_every_table_is_guarded(
    connected: Connected, tmp_path: Path, name: str, parsed: str
) -> None:
    captured(connected, '=HYPERLINK("http://evil.example","x")\t@SUM(1)')
    target = tmp_path / name
    result = connected.run("reconcile", "--output", str(target))
    assert result.code in (0, 1), result.output
    text = target.read_text(encoding="utf-8")
    if parsed == "json":
        items = json.loads(text)["items"]
        assert any("HYPERLINK" in item["stampli_invoice_id"] for item in items)
        return
    if parsed == "csv":
        rows = spreadsheet_rows(text)
    else:  # once: tab-separated with no formula guard at all
        rows = [line.split("\t") for line in text.splitlines()]
    assert rows[0][0] == "fb_bill_id" if parsed == "csv" else rows[0][0] != ""
    assert len({len(row) for row in rows}) == 1, rows
    cells = [cell for row in rows for cell in row]
    assert any("HYPERLINK" in cell for cell in cells)
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "--format", "csv"),
        ("reconcile", "--format", "csv"),
        # The table a terminal shows names the bill by its FreshBooks invoice number, not
        # Stampli's; JSON is the other format that prints Stampli's own text there.
        ("reconcile", "--format", "json"),
    ],
)
def test_every_format_printed_to_a_terminal_shows_stampli_control_characters_escaped(
    connected: Connected, args: tuple[str, ...]
) -> None:
    captured(connected, "STP9" + ESCAPES)
    code, shown = on_a_terminal(connected.home, *args)
    assert code in (0, 1), shown
    assert "STP9" in shown
    for raw in ("\x1b]0;", "\x07", "\x9b"):  # once: the terminal's title changed
        assert raw not in shown, repr(raw)
