"""What the program says to people, through the real command line (issue 16 §2 and §3):
summaries are sentences with the next step, and each failure is named for what it is."""

from pathlib import Path

from tests.e2e.conftest import Connected
from tests.support.cli import REPO, run


def test_init_says_what_it_made_and_what_to_do_next(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "-v", "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"Created {tmp_path / 'home'}: ")
    assert "Next: `fbstampli auth login`." in result.stdout
    again = run(tmp_path / "home", "-v", "init")
    assert "is set up already (key in file); nothing changed." in again.stdout


def test_sync_says_sentences_on_the_terminal_and_in_the_log(connected: Connected) -> None:
    result = connected.run("-v", "sync")
    assert result.code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("Sent 3 files to Stampli: 6 vendors, 30 bills, 10 payments. ")
    assert "Reconciled 30 bills: " in first
    assert "push-bills.files" not in result.stdout
    log = (connected.home / "logs" / "fbstampli.log").read_text()
    assert "sync: exit 0; Sent 3 files to Stampli: 6 vendors, 30 bills, 10 payments." in log


def test_template_check_is_a_sentence(home: Path) -> None:
    template = REPO / "examples" / "stampli-template.toml"
    result = run(home, "-v", "template", "check", str(template))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"{template} is a valid Stampli template."
