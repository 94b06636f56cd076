"""`--help` reads like a well-liked CLI (issue 16 §4): no parser internals, whole one-line
summaries, commands in groups, examples, and every choice listed."""

import contextlib
import io
import os
import re
from typing import Any
from unittest import mock

import pytest

from fbstampli.cli import run

# What the parser says about itself, never meant for people.
INTERNALS = ("<int range>", "9223372036854775807", "<list[", "{file}", "<str>", "<path>", "<int>")


def help_of(*command: str, columns: int = 80) -> str:
    out = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": str(columns)}), contextlib.redirect_stdout(out):
        assert run([*command, "--help"]) == 0
    return out.getvalue()


def every_command() -> list[str]:
    import typer.main

    from fbstampli.cli import app

    def walk(group: Any, prefix: str) -> list[str]:
        names = [prefix.strip()] if prefix else [""]
        for name, command in sorted(group.commands.items()):
            if hasattr(command, "commands"):
                names += walk(command, f"{prefix}{name} ")
            else:
                names.append(f"{prefix}{name}")
        return names

    return walk(typer.main.get_command(app), "")


@pytest.mark.parametrize("command", every_command())
def test_help_shows_no_parser_internals_and_cuts_no_summary(command: str) -> None:
    text = help_of(*command.split())
    for internal in INTERNALS:
        assert internal not in text, f"`fbstampli {command} --help` shows {internal!r}"
    assert "[default: 0]" not in text
    assert not re.search(r"\w\.\.\.$", text, re.MULTILINE), f"a summary is cut in {command}"
    assert re.search(r"\{\w+\}", text.splitlines()[0]) is None


GROUPS = {"auth", "business", "sandbox", "state", "key", "template", "webhooks"}
LEAVES = [command for command in every_command() if command and command not in GROUPS]


@pytest.mark.parametrize("command", LEAVES)
def test_every_command_has_an_example(command: str) -> None:
    assert "Examples:\n    $ fbstampli " in help_of(*command.split())


def test_top_level_help_groups_commands_and_each_summary_fits_one_line() -> None:
    text = help_of()
    for title in ("Daily", "Setup", "Inspect", "Maintenance"):
        assert re.search(rf"^{title}.*:$", text, re.MULTILINE), title
    listing = text[text.index("Daily") :]
    for line in listing.splitlines():
        if line.startswith("  ") and line.strip():
            assert re.match(r"^  [a-z-]+ +\S", line), f"a summary wraps: {line!r}"


def test_choices_are_listed_and_contradictions_are_gone() -> None:
    assert "<auto|env|keyring|file>" in help_of("init")
    assert "<text|json>" in help_of()
    reconcile = help_of("reconcile")
    assert "(default on a terminal)" not in reconcile
    assert "instead of a table" not in help_of("retry")
    assert "verify" in help_of("webhooks").splitlines()[2]
