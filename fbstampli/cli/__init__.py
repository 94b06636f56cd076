"""The `fbstampli` command line: options in, one service call, a report out.

Thin on purpose: no SQL, HTTP, CSV or business rules here. Heavy modules are
imported inside command bodies so that `fbstampli --help` starts fast. The
only catch-all of the program is in `main()`: a bug becomes a traceback in the
log file and one line on stderr, every known error one line and its exit code.
"""

import logging
import os
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from fbstampli import __version__
from fbstampli.errors import ExitCode, FbstampliError
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
    allow_foreign_home: Annotated[
        bool,
        typer.Option(
            "--allow-foreign-home",
            envvar="FBSTAMPLI_ALLOW_FOREIGN_HOME",
            help="Use a home that belongs to another user (e.g. root running a service "
            "user's home). Refused without it: that user could plant links in it.",
        ),
    ] = False,
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
        allow_foreign_home=allow_foreign_home,
        env=dict(os.environ),
    )
    ctx.obj = options
    from fbstampli.logs import configure_logging
    from fbstampli.paths import check_home

    check_home(options.paths(), allow_foreign=allow_foreign_home)  # before the log file opens
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

    counts = ", ".join(f"{name} {value}" for name, value in sorted(report.counts.items()) if value)
    log.info("%s: exit %d; %s", report.command, code, counts or "nothing to do", extra=FILE_ONLY)
    for problem in report.problems:
        log.warning("%s: %s", report.command, problem, extra=FILE_ONLY)


def finish(ctx: typer.Context, report: Any, *, as_json: bool = False) -> NoReturn:
    """Show a RunReport the way the caller asked, log it, and exit with its code."""
    from fbstampli.cli import output

    output.show_report(report, options_of(ctx), as_json=as_json)
    log_outcome(report, int(report.exit_code))
    raise typer.Exit(int(report.exit_code))


# Sub-commands live in their own modules; importing them registers them on `app`.
from fbstampli.cli import admin, auth, sync, webhooks  # noqa: E402, F401


def main() -> NoReturn:
    """Entry point: run the app, map every outcome to one line and an exit code."""
    from fbstampli.hardening import forbid_core_dumps

    forbid_core_dumps()  # before any secret is read, so no crash can write one to a core
    os.umask(0o077)
    from fbstampli.logs import configure_logging

    configure_logging()  # until the global callback knows the home and verbosity
    raise SystemExit(run())


def run(args: Sequence[str] | None = None) -> int:
    """The exit code of one command line (`sys.argv` when None), its outcome told on stderr.

    Separate from `main` so that tests can drive the real argument handling
    and error mapping in-process, without `main`'s process-wide settings.
    """
    try:
        result = app(args=args, standalone_mode=False, prog_name="fbstampli")
        code = int(result) if isinstance(result, int) else 0
    except FbstampliError as error:
        from fbstampli.logs import FILE_ONLY, redact

        log.debug("command failed", exc_info=True)
        log.error("error (exit %d): %s", error.exit_code, error, extra=FILE_ONLY)
        from fbstampli.cli.output import problem_line

        problem_line(f"error: {redact(str(error))}")  # may quote a remote name: cleaned
        code = int(error.exit_code)
    except typer.Abort:
        sys.stderr.write("fbstampli: aborted\n")
        code = 130
    except typer.TyperException as error:  # typer's own (vendored click) usage errors
        show = getattr(error, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"fbstampli: error: {error}\n")
        code = ExitCode.USAGE
    except KeyboardInterrupt:
        sys.stderr.write("fbstampli: interrupted; the next run finishes the work\n")
        code = 130
    except Exception as error:
        from fbstampli.logs import CRASH_LOGGER

        logging.getLogger(CRASH_LOGGER).exception("internal error")
        where = _log_file_in_use[0] if _log_file_in_use else "the log file (or run with -vv)"
        sys.stderr.write(
            f"fbstampli: internal error ({type(error).__name__}); this is a bug: the traceback "
            f"is in {where}; please report it\n"
        )
        code = ExitCode.INTERNAL
    sys.stdout.flush()
    return code
