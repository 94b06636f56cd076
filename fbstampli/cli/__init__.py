"""The `fbstampli` command line: options in, one service call, a report out.

Thin on purpose: no SQL, HTTP, CSV or business rules here. Heavy modules are
imported inside command bodies so that `fbstampli --help` starts fast. The
app and its global options are in `cli/app.py`; each command module registers
its commands on it when imported below. The command's catch-all is in
`run()`: a bug becomes a traceback in the log file and one line on stderr,
every known error one line and its exit code. The others stand where one
failure must not stop the rest: each business of `--all`, each export file a
pull reads, the listener's worker, the read-ahead thread; each logs what it
caught (docs/ARCHITECTURE.md lists them).
"""

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import typer

from fbstampli.cli import (  # noqa: F401 - registers commands (sandbox_edit after sandbox)
    admin,
    auth,
    business,
    digest,
    sandbox,
    sandbox_edit,
    sync,
    webhooks,
)
from fbstampli.cli.app import app, log_file_in_use
from fbstampli.errors import ExitCode, FbstampliError

log = logging.getLogger("fbstampli")


def main() -> NoReturn:
    """Entry point: run the app, map every outcome to one line and an exit code."""
    from fbstampli.hardening import forbid_core_dumps

    forbid_core_dumps()  # before any secret is read, so no crash can write one to a core
    os.umask(0o077)
    from fbstampli.cli.text import clean
    from fbstampli.logs import configure_logging

    configure_logging(clean=clean)  # until the global callback knows the home and verbosity
    raise SystemExit(run())


def _expected_under_quiet(error: FbstampliError) -> bool:
    """A lock held by the previous cron run under -q, for less than the home's
    `monitoring.quiet_transient_hours` (the rule of every transient condition): cron should
    not mail about a run that simply had nothing to do yet (the log file has it)."""
    from fbstampli.cli.app import _quiet_run
    from fbstampli.errors import LockHeldError

    return (
        isinstance(error, LockHeldError)
        and bool(_quiet_run and _quiet_run[0])
        and error.held_seconds < error.quiet_seconds
    )


def run(args: Sequence[str] | None = None) -> int:
    """The exit code of one command line (`sys.argv` when None), its outcome told on stderr.

    Separate from `main` so that tests can drive the real argument handling
    and error mapping in-process, without `main`'s process-wide settings.
    """
    try:
        from typer.main import get_command

        from fbstampli.cli.argv import hoisted

        if os.environ.get("_FBSTAMPLI_COMPLETE"):  # shell completion (README: Shell completion)
            from typer._completion_classes import completion_init

            completion_init()
        words = list(sys.argv[1:] if args is None else args)
        words = hoisted(get_command(app), words)  # `fbstampli sync -q` works too
        result = app(args=words, standalone_mode=False, prog_name="fbstampli")
        code = int(result) if isinstance(result, int) else 0
    except FbstampliError as error:
        from fbstampli.logs import FILE_ONLY, redact

        log.debug("command failed", exc_info=True)
        log.error("error (exit %d): %s", error.exit_code, error, extra=FILE_ONLY)
        if not _expected_under_quiet(error):
            from fbstampli.cli.output import problem_line

            problem_line(f"error: {redact(str(error))}")  # may quote a remote name: cleaned
        code = int(error.exit_code)
    except typer.Abort:
        sys.stderr.write("fbstampli: aborted\n")
        code = 130
    except typer.TyperException as error:  # typer's own (vendored click) usage errors
        from fbstampli.cli.argv import usage_line

        sys.stderr.write(f"fbstampli: error: {usage_line(error)}\n")  # one line, as all others
        code = ExitCode.USAGE
    except PermissionError as error:  # a local path this user may not use: not a bug
        from fbstampli.access import access_error, access_message

        denied = access_error(error)
        text = str(denied) if denied else access_message(Path(str(error.filename or ".")))
        log.debug("permission denied", exc_info=True)
        sys.stderr.write(f"fbstampli: error: {text}\n")
        code = ExitCode.USAGE
    except KeyboardInterrupt:
        sys.stderr.write("fbstampli: interrupted; the next run finishes the work\n")
        code = 130
    except Exception as error:
        from fbstampli.logs import CRASH_LOGGER

        logging.getLogger(CRASH_LOGGER).exception("internal error")
        where = log_file_in_use[0] if log_file_in_use else "the log file (or run with -vv)"
        sys.stderr.write(
            f"fbstampli: internal error ({type(error).__name__}); this is a bug: the traceback "
            f"is in {where}; please report it\n"
        )
        code = ExitCode.INTERNAL
    sys.stdout.flush()
    return code
