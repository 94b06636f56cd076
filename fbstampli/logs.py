"""Logging: quiet console on stderr, a bounded rotating file, and redaction everywhere.

Every secret the program loads is registered with `register_secret`, and a
filter on every handler replaces it (and anything shaped like a bearer token
or a password field) before a record is formatted, so no secret can reach a
terminal, a cron mail or a log file, whatever a caller logs by mistake.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REDACTED = "[redacted]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|password|passphrase|verifier|"
        r"FBSTAMPLI_DB_KEY)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
    ),
)


def register_secret(value: str | None) -> None:
    """Make `value` unprintable from now on (short values would redact too much)."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _Cleaning(logging.Filter):
    """The message, its arguments merged in, passed through `clean` (after redaction)."""

    def __init__(self, clean: Callable[[str], str]) -> None:
        super().__init__()
        self.clean = clean

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["traceback"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """Console lines without tracebacks: those go to the log file (or show with -vv)."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


CRASH_LOGGER = "fbstampli.crash"
# Records carrying `extra=FILE_ONLY` go to the log file only: what the console already said
# in its own words (a run's problems, its one-line error) is kept there for later.
FILE_ONLY = {"file_only": True}


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, "file_only", False)


def _not_crash(record: logging.LogRecord) -> bool:
    return record.name != CRASH_LOGGER


def _not_paramiko(record: logging.LogRecord) -> bool:
    """paramiko's reader thread logs a dropped connection at ERROR ("Socket exception: ...");
    the same failure reaches `sftp/` as an exception and becomes our one line, so on the
    console it would be said twice, and cron would mail both. The log file keeps it."""
    return not record.name.startswith("paramiko")


def console_level(verbose: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def _log_file_handler(path: Path) -> logging.Handler:
    """The home's rotating log file; a disk that fills up costs the log, not the run.

    logging's default on a failed write is a traceback on stderr for every
    record, which under cron is a mail full of them. Here the first failed
    write is one warning on the console (so `-q` and `--log-format json` hold),
    and the file is left alone for the rest of the run. Any other error in a
    record is logging's usual business.
    """
    from logging.handlers import RotatingFileHandler  # only with a home that logs to file

    class LogFile(RotatingFileHandler):
        broken = False

        def _open(self) -> Any:
            # Never through a link planted as the log file: root would append to its target.
            from fbstampli.paths import open_home_file

            fd = open_home_file(Path(self.baseFilename), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

        def emit(self, record: logging.LogRecord) -> None:
            if not self.broken:
                super().emit(record)

        def handleError(self, record: logging.LogRecord) -> None:
            error = sys.exc_info()[1]
            if not isinstance(error, OSError):
                super().handleError(record)
                return
            if self.broken:
                return
            self.broken = True  # before the warning, which would come back here otherwise
            logging.getLogger(__name__).warning(
                "cannot write the log file %s (%s); not logging to it for the rest of this run",
                self.baseFilename,
                error.strerror or error,
            )

    # backslashreplace: a path or value from argv may hold bytes that are not UTF-8.
    return LogFile(
        path, maxBytes=5 * 1024 * 1024, backupCount=5, encoding="utf-8", errors="backslashreplace"
    )


def _console_handler(
    verbose: int,
    quiet: bool,
    log_format: str,
    redactor: logging.Filter,
    clean: Callable[[str], str] | None,
) -> logging.Handler:
    """stderr: rich on a terminal, one line per record otherwise (tracebacks only at -vv)."""
    console: logging.Handler
    if log_format == "text" and sys.stderr.isatty():
        from rich.logging import RichHandler

        console = RichHandler(show_path=False, show_time=False, markup=False)
        text_format = "%(message)s"
    else:
        console = logging.StreamHandler(sys.stderr)
        text_format = "fbstampli: %(message)s"
    if log_format == "json":
        console.setFormatter(JsonFormatter())
    elif verbose >= 2:
        console.setFormatter(logging.Formatter(text_format))
    else:
        console.setFormatter(OneLineFormatter(text_format))
    console.setLevel(console_level(verbose, quiet))
    console.addFilter(redactor)
    if clean is not None:
        console.addFilter(_Cleaning(clean))
    console.addFilter(_not_file_only)
    if verbose < 2:
        console.addFilter(_not_crash)
        console.addFilter(_not_paramiko)
    return console


def configure_logging(
    *,
    verbose: int = 0,
    quiet: bool = False,
    log_format: str = "text",
    log_file: Path | None = None,
    clean: Callable[[str], str] | None = None,
) -> None:
    """Install the handlers once per process; later calls replace them.

    `clean` (the CLI's `cli/text.clean`) escapes control characters in each
    message before the console shows it: a message may quote a remote file name
    or other outside text, which must not retitle the terminal. The record keeps
    the cleaned text for the log file too, which is read on terminals as well.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    redactor = RedactingFilter()

    root.addHandler(_console_handler(verbose, quiet, log_format, redactor, clean))

    if log_file is not None:
        try:
            file_handler = _log_file_handler(log_file)
        except OSError as error:
            # An error, so that `-q` (cron) says it too: once, here, instead of never; the
            # run goes on without its record in the file.
            from fbstampli.access import access_error

            denied = access_error(error)
            reason = str(denied) if denied else f"cannot write {log_file} ({error.strerror})"
            logging.getLogger(__name__).error(
                "%s; this run is not recorded in the log file", reason
            )
        else:
            file_handler.setFormatter(
                JsonFormatter()
                if log_format == "json"
                else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            file_handler.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
            file_handler.addFilter(redactor)
            root.addHandler(file_handler)
    for noisy in ("paramiko", "urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def also_logging_to(log_file: Path | None) -> Iterator[None]:
    """For the body, records also go to `log_file`: each business of an installation keeps
    its own log while `sync --all` runs them in one process. Formatted like the process's
    own log file when it has one; a file that cannot be opened costs that log only."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger()
    model = next((h for h in root.handlers if isinstance(h, RotatingFileHandler)), None)
    if log_file is None or (model is not None and Path(model.baseFilename) == log_file.absolute()):
        yield
        return
    try:
        handler = _log_file_handler(log_file)
    except OSError:
        logging.getLogger(__name__).warning("cannot write the log file %s", log_file)
        yield
        return
    handler.setFormatter(
        model.formatter
        if model is not None and model.formatter is not None
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(model.level if model is not None else logging.INFO)
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
