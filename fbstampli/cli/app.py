"""The Typer app, its global options, and what every command module shares.

Kept apart from `cli/__init__.py` so that the command modules can import the
app without importing the package that imports them (no import cycle).
"""

import logging
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from fbstampli import __version__
from fbstampli.options import Options
from fbstampli.paths import expanded

log = logging.getLogger("fbstampli")

app = typer.Typer(
    name="fbstampli",
    help=(
        "Move FreshBooks bills, vendors and bill payments into Stampli over SFTP, "
        "and read Stampli's exports back for audit and payment reconciliation."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print a stable JSON document instead of a table.")
]


# Bounds for numeric options, checked by the parser so that no value reaches SQLite or a
# socket out of range: ids are positive 64-bit integers, ports fit in 16 bits.
MAX_ID = 2**63 - 1
MAX_PORT = 65535


class ReportFormat(StrEnum):
    """How a report is printed; a choice, so that a typo is refused before any work is done."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


# The log file this process writes, once the global options are known: a bug's one line
# names it, so nobody has to guess which home's log holds the traceback.
_log_file_in_use: list[Path] = []
# Whether -q was given, for run()'s error mapping (which runs outside the Typer context).
_quiet_run: list[bool] = []

# Under -q a held lock is normal (the previous cron run is still going) and is only logged;
# held this long, something is stuck and cron is told.
LOCK_QUIET_SECONDS = 60 * 60


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"fbstampli {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="FBSTAMPLI_HOME",
            help="Folder holding config.toml, the encrypted state, logs and the run lock "
            "(default ~/.config/fbstampli).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Config file to read instead of <home>/config.toml."),
    ] = None,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="More detail on stderr (-vv for debug)."),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Errors only: what cron should run with.")
    ] = False,
    log_format: Annotated[
        str,
        typer.Option("--log-format", help="text, or json (one object per line) for log shippers."),
    ] = "text",
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be text or json", param_hint="--log-format")
    options = Options(
        home=expanded(home, "--home") if home else None,
        config=expanded(config, "--config") if config else None,
        verbose=verbose,
        quiet=quiet,
        log_format=log_format,
        env=dict(os.environ),
    )
    ctx.obj = options
    _quiet_run[:] = [quiet]
    from fbstampli.logs import configure_logging

    log_file = options.paths().existing_log_file()
    _log_file_in_use[:] = [log_file] if log_file else []
    configure_logging(verbose=verbose, quiet=quiet, log_format=log_format, log_file=log_file)


def options_of(ctx: typer.Context) -> Options:
    options = ctx.obj
    if not isinstance(options, Options):
        raise TypeError("the global callback did not run")
    return options


def log_outcome(report: Any, code: int) -> None:
    """A run's outcome and problems to the log file only: the console has said them already,
    and the file is what tells an operator later what each cron run did."""
    from fbstampli.logs import FILE_ONLY
    from fbstampli.summaries import sentences

    counts = ", ".join(f"{name} {value}" for name, value in sorted(report.counts.items()) if value)
    said = " ".join(sentences(report))
    log.info(
        "%s: exit %d; %s (%s)", report.command, code, said, counts or "no counts", extra=FILE_ONLY
    )
    for problem in report.problems:
        log.warning("%s: %s", report.command, problem, extra=FILE_ONLY)


def finish(ctx: typer.Context, report: Any, *, as_json: bool = False) -> NoReturn:
    """Show a RunReport the way the caller asked, log it, and exit with its code."""
    from fbstampli.cli import output

    output.show_report(report, options_of(ctx), as_json=as_json)
    log_outcome(report, int(report.exit_code))
    raise typer.Exit(int(report.exit_code))
