"""Every command that reports takes `--json` (issue 29): a script never has to guess which
spelling a command uses. The commands that serve until stopped (a listener, the sandboxes,
the demo's walk-through) report nothing to parse."""

from typing import Any

import typer.main

from fbstampli.cli import app

# They run until stopped, or narrate a walk-through for people: no report to parse.
SERVING = {"demo", "serve-webhook", "sandbox sftp", "sandbox freshbooks"}


def commands_and_options() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def walk(command: Any, path: str) -> None:
        if path and (not hasattr(command, "commands") or command.callback is not None):
            found[path] = {option for param in command.params for option in param.opts}
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


def test_every_reporting_command_takes_json() -> None:
    found = commands_and_options()
    without = sorted(path for path, options in found.items() if "--json" not in options)
    assert without == sorted(SERVING)


def test_the_reports_with_formats_take_json_too() -> None:
    found = commands_and_options()
    assert {"--json", "--format"} <= found["reconcile"]
    assert {"--json", "--format"} <= found["audit"]
