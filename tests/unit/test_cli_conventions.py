"""CLI conventions checked in-process: `-h` everywhere, `--color` and NO_COLOR, argv hoisting."""

import contextlib
import io
import os
from unittest import mock

import pytest
import typer.main

from fbstampli.cli import app, output, run
from fbstampli.cli.argv import hoisted
from fbstampli.services.business import BusinessStatus
from tests.unit.test_help import every_command


def printed(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with mock.patch.dict(os.environ, {"COLUMNS": "80"}), contextlib.redirect_stdout(out):
        code = run(list(args))
    return code, out.getvalue()


# One command at each level of the tree: `-h` is set once, on the root, and inherited.
LEVELS = ["", "sync", "auth", "auth sftp", "sandbox freshbooks", "sandbox freshbooks edit-bill"]


def test_the_sampled_levels_are_real_commands() -> None:
    assert set(LEVELS) <= set(every_command())


@pytest.mark.parametrize("command", LEVELS)
def test_dash_h_is_help_at_every_level_of_commands(command: str) -> None:
    words = command.split()
    code, text = printed(*words, "-h")
    assert code == 0
    assert (code, text) == printed(*words, "--help")
    assert text.startswith("Usage: fbstampli")


def test_color_never_and_no_color_give_a_console_without_colour() -> None:
    output.use_color("never", no_color_env=False)
    assert output.console().no_color
    output.use_color("auto", no_color_env=True)  # https://no-color.org
    assert output.console().no_color
    output.use_color("always", no_color_env=True)  # asked for by name: wins over the variable
    assert output.console().is_terminal
    output.use_color("auto", no_color_env=False)
    assert not output.console().no_color


def test_the_color_option_reaches_the_printer(tmp_path: object) -> None:
    with mock.patch.dict(os.environ, {"FBSTAMPLI_HOME": str(tmp_path)}):
        printed("--color", "never", "template", "--help")
        assert output._color == ["never"]
        printed("template", "--help", "--color", "always")
        assert output._color == ["always"]
    output.use_color("auto", no_color_env=False)


def test_hoisting_moves_global_options_and_leaves_everything_else_in_place() -> None:
    group = typer.main.get_command(app)
    assert hoisted(group, ["sync", "-q"]) == ["-q", "sync"]
    assert hoisted(group, ["push-bills", "-vv", "--since", "2026-01-01"]) == [
        "-vv", "push-bills", "--since", "2026-01-01",
    ]  # fmt: skip
    assert hoisted(group, ["auth", "status", "--home", "/x"]) == ["--home", "/x", "auth", "status"]
    # The command's own --business, and an option value that looks like a global option.
    assert hoisted(group, ["auth", "login", "--business", "7"]) == [
        "auth",
        "login",
        "--business",
        "7",
    ]
    assert hoisted(group, ["audit", "--bill", "-q"]) == ["audit", "--bill", "-q"]
    assert hoisted(group, ["synk", "-q"]) == ["synk", "-q"]  # unknown: the parser says so


def test_status_all_on_a_terminal_shows_local_times_and_names_the_zone() -> None:
    summary = BusinessStatus(
        business="alpha",
        home="/srv/alpha",
        needs_attention=[],
        bills_in_stampli=3,
        failing=0,
        last_run={"command": "sync", "started_at": "2026-12-07T12:45:00+00:00", "exit_code": 0},
    )
    out = io.StringIO()
    with (
        mock.patch.object(output, "stdout_is_terminal", return_value=True),
        mock.patch.dict(os.environ, {"COLUMNS": "200", "TZ": "America/New_York"}),
        contextlib.redirect_stdout(out),
    ):
        import time

        time.tzset()
        output.show_status_all([summary], as_json=False)
    time.tzset()
    text = out.getvalue()
    assert "Dec 07 07:45" in text or "07:45" in text, text
    assert "2026-12-07T12:45" not in text  # not the JSON's UTC ISO form
    assert "times are local: EST, UTC-05:00" in text
