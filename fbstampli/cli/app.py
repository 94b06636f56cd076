"""The Typer app, its global options, and what every command module shares.

Kept apart from `cli/__init__.py` so that the command modules can import the
app without importing the package that imports them (no import cycle).
"""

import logging
import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer import _click as click
from typer._click.core import ParameterSource
from typer.core import TyperCommand, TyperGroup

from fbstampli import __version__
from fbstampli.options import Options
from fbstampli.paths import expanded

log = logging.getLogger("fbstampli")

# The top-level help lists commands by what people come for, as gh and restic do; a command
# not named here lands in the last group, so a new one can never vanish from the help.
COMMAND_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Daily (cron runs sync)", ("sync", "status", "retry", "digest")),
    ("The parts of sync", ("push-bills", "pull-stampli", "reconcile")),
    ("Setup", ("init", "auth", "template", "webhooks", "serve-webhook", "business")),
    ("Inspect", ("doctor", "audit")),
    ("Maintenance", ("state", "key")),
    ("Try it without accounts", ("demo", "sandbox")),
)


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as written (click's `\\b` stops re-wrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  $ {line}" for line in lines)


# Metavars by parameter name where the name alone would not say what to give.
METAVARS = {
    "since": "DATE",
    "key_file": "FILE",
    "known_hosts": "FILE",
    "output_file": "FILE",
    "file": "FILE",
    "accept_host_key": "FINGERPRINT",
    "root": "DIR",
    "inbound": "FOLDER",
    "outbound": "FOLDER",
    "username": "USER",
    "callback_id": "CALLBACK_ID",
    "write_config": "HOME",
}


def _plain(text: str) -> str:
    """Help text without the parser's type labels: `{file}` in the usage line becomes FILE,
    an argument's `<int>` beside its name goes (alignment kept)."""
    lines = text.split("\n")
    if lines and lines[0].startswith("Usage:"):
        lines[0] = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), lines[0])
    plain = []
    for line in lines:
        match = re.match(r"^(  [A-Z_]+)( <[a-z]+>)(.*)$", line)
        if match:
            line = match.group(1) + " " * len(match.group(2)) + match.group(3)
        plain.append(line)
    return "\n".join(plain)


def _name_metavars(command: click.Command) -> None:
    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False) or param.name is None:
            continue
        descriptor = getattr(param, "type_descriptor", None)
        if getattr(param, "count", False) or getattr(descriptor, "is_choice", False):
            continue
        param.metavar = METAVARS.get(param.name, param.name.upper())


class FriendlyCommand(TyperCommand):
    """A command whose help names what to give (HOST, FILE, ID), not the parser's types."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_metavars(self)

    def get_help(self, ctx: click.Context) -> str:
        return _plain(super().get_help(ctx))


class GroupedHelp(TyperGroup):
    """Commands listed in groups, each summary whole (never cut with "...")."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        commands = {
            name: command
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        }
        grouped: list[tuple[str, list[str]]] = []
        placed: set[str] = set()
        if ctx.parent is None:
            for title, wanted in COMMAND_GROUPS:
                present = [name for name in wanted if name in commands]
                placed.update(present)
                if present:
                    grouped.append((title, present))
        rest = [name for name in commands if name not in placed]
        if rest:
            grouped.append(("Other commands" if grouped else "Commands", rest))
        width = max(len(name) for name in commands)  # one column across the groups
        for title, listed in grouped:
            rows = [
                (name.ljust(width), commands[name].get_short_help_str(limit=200)) for name in listed
            ]
            with formatter.section(title):
                formatter.write_dl(rows)


class CommandLikeGroup(GroupedHelp):
    """A group that also acts as a command when given none (`reconcile`, `sandbox
    freshbooks`): its own options named as a command's are (FILE, not the parser's type)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_metavars(self)

    def get_help(self, ctx: click.Context) -> str:
        return _plain(super().get_help(ctx))


app = typer.Typer(
    cls=GroupedHelp,
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
    context_settings={"help_option_names": ["-h", "--help"]},  # every subcommand inherits it
)

JsonFlag = Annotated[
    bool,
    typer.Option("--json", help="Print the result as JSON, with stable keys, for scripts."),
]


# Bounds for numeric options, checked by the parser so that no value reaches SQLite or a
# socket out of range: ids are positive 64-bit integers, ports fit in 16 bits.
MAX_ID = 2**63 - 1
MAX_PORT = 65535


def in_range(low: int, high: int) -> Any:
    """A parser check for an int (or each of a list of them) that `--help` does not spell out
    as `[1<=x<=9223372036854775807]`."""

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if item is not None and not low <= item <= high:
                top = "up" if high >= MAX_ID else f"to {high}"
                raise typer.BadParameter(f"{item} is out of range: give {low} {top}")
        return value

    return check


COMMANDLINE = ParameterSource.COMMANDLINE


class ColorChoice(StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class KeySourceChoice(StrEnum):
    """Where `init` keeps the state key; a choice, so `--help` lists them."""

    AUTO = "auto"
    ENV = "env"
    KEYRING = "keyring"
    FILE = "file"


class ReportFormat(StrEnum):
    """How a report is printed; a choice, so that a typo is refused before any work is done."""

    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def json_or_format(as_json: bool, output_format: ReportFormat) -> ReportFormat:
    """`--json` is `--format json` (the one spelling every reporting command takes)."""
    if not as_json:
        return output_format
    if output_format not in (ReportFormat.TABLE, ReportFormat.JSON):
        from fbstampli.errors import ConfigError

        raise ConfigError(f"--json and --format {output_format.value} disagree: give one of them")
    return ReportFormat.JSON


# The log file this process writes, once the global options are known: a bug's one line
# names it, so nobody has to guess which home's log holds the traceback.
log_file_in_use: list[Path] = []
# Whether -q was given, for run()'s error mapping (which runs outside the Typer context).
_quiet_run: list[bool] = []


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"fbstampli {__version__}\n")
        raise typer.Exit(0)


_HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="FBSTAMPLI_HOME",
        metavar="DIR",
        help="Folder holding config.toml, the encrypted state, logs and the run lock "
        "(default ~/.config/fbstampli).",
    ),
]
_ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        envvar="FBSTAMPLI_CONFIG",
        help="Config file to read instead of <home>/config.toml.",
    ),
]
_ColorOption = Annotated[
    ColorChoice,
    typer.Option(
        "--color",
        envvar="FBSTAMPLI_COLOR",
        case_sensitive=False,
        help="auto: colour and progress bars only on a terminal, and no colour when "
        "NO_COLOR is set; always; never.",
    ),
]
_InstallationOption = Annotated[
    Path | None,
    typer.Option(
        "--installation",
        metavar="DIR",
        envvar="FBSTAMPLI_INSTALLATION",
        help="Folder listing several businesses in installation.toml (default: the home).",
    ),
]
_BusinessOption = Annotated[
    str | None,
    typer.Option(
        "--business",
        metavar="NAME",
        help="Run the command in this business's home (see `business list`).",
    ),
]
_VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        help="More detail on stderr (-vv for debug).",
    ),
]
_QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Errors only: what cron should run with.")
]
_LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="text, or json (one object per line) for log shippers.",
    ),
]
_AllowForeignHomeOption = Annotated[
    bool,
    typer.Option(
        "--allow-foreign-home",
        envvar="FBSTAMPLI_ALLOW_FOREIGN_HOME",
        help="Use a home that belongs to another user (e.g. root running a service "
        "user's home). Refused without it: that user could plant links in it.",
    ),
]
_VersionOption = Annotated[
    bool,
    typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
]


@app.callback()
def _global(
    ctx: typer.Context,
    home: _HomeOption = None,
    config: _ConfigOption = None,
    installation: _InstallationOption = None,
    business: _BusinessOption = None,
    verbose: _VerboseOption = 0,
    quiet: _QuietOption = False,
    log_format: _LogFormatOption = LogFormat.TEXT,
    allow_foreign_home: _AllowForeignHomeOption = False,
    color: _ColorOption = ColorChoice.AUTO,
    version: _VersionOption = False,
) -> None:
    options = Options(
        home=expanded(home, "--home") if home else None,
        config=expanded(config, "--config") if config else None,
        verbose=verbose,
        quiet=quiet,
        log_format=log_format.value,
        allow_foreign_home=allow_foreign_home,
        env=dict(os.environ),
        installation=expanded(installation, "--installation") if installation else None,
    )
    if business is not None:
        from fbstampli.installation import selected

        options = selected(options, business)
    ctx.obj = options
    _quiet_run[:] = [quiet]
    from fbstampli.cli import output

    given = ctx.get_parameter_source("installation") == COMMANDLINE  # not found by default
    output.hints_for_business(business, installation=options.installation if given else None)
    output.use_color(color.value, no_color_env=bool(os.environ.get("NO_COLOR")))
    from fbstampli.errors import ConfigError
    from fbstampli.logs import configure_logging
    from fbstampli.paths import check_home

    try:
        check_home(options.paths(), allow_foreign=allow_foreign_home)  # before the log file opens
    except ConfigError:
        if ctx.invoked_subcommand != "doctor":  # doctor names it as a check, runs the rest
            raise
        log_file = None
    else:
        log_file = options.paths().existing_log_file()
    log_file_in_use[:] = [log_file] if log_file else []
    from fbstampli.cli.text import clean

    configure_logging(
        verbose=verbose, quiet=quiet, log_format=log_format.value, log_file=log_file, clean=clean
    )


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
