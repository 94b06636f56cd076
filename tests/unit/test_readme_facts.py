"""Small facts the README and the examples state, held to the code (issue 29's slips)."""

import re

from fbstampli.sandbox.realities import REALITIES
from tests.support.cli import REPO
from tests.unit.test_help import help_of

README = (REPO / "README.md").read_text(encoding="utf-8")


def test_the_readme_names_one_virtual_environment() -> None:
    assert len(set(re.findall(r"python3 -m venv (\S+)", README))) == 1


def test_reality_help_names_every_reality_the_sandbox_can_act_out() -> None:
    text = re.sub(r"-\n\s+", "-", help_of("sandbox", "freshbooks"))  # words wrap at hyphens
    for name in REALITIES:
        assert name in text, name


def test_auth_sftp_is_not_said_to_list_the_folders_it_only_checks() -> None:
    assert "lists both folders" not in README


def test_a_full_disk_has_one_exit_code_per_file_it_strikes() -> None:
    # The state's disk full is 4 (SQLite says "full or failing"), any other file's is 75.
    rows = {row.split("|")[1].strip(): row for row in README.splitlines() if row.startswith("| ")}
    assert "full" in rows["4"]
    assert "under the state file is exit 4" in rows["75"]


def test_the_example_config_does_not_say_every_run_lists_every_payment() -> None:
    example = (REPO / "examples" / "config.toml").read_text(encoding="utf-8")
    assert "always list every bill payment" not in example
    assert "payments of only the bills that moved" in example
