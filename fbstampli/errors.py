"""Exit codes and the error tree every layer raises.

Adapters translate library exceptions into these at their boundary, so that
nothing above `freshbooks/`, `sftp/` or `store/` ever catches a requests,
paramiko or sqlite exception. Each message is one line: what happened, then
what to do. Messages are built from ids, hosts and paths, never from secrets.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    PARTIAL = 1  # finished, but some records failed and are queued for retry
    USAGE = 2  # usage or configuration error
    AUTH = 3  # authentication needed
    STATE = 4  # state file unusable
    INTERNAL = 70  # a bug
    TEMPFAIL = 75  # try again later


class FbstampliError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(FbstampliError):
    exit_code = ExitCode.USAGE


class LocalAccessError(ConfigError):
    """A local file or folder this user may not read or write: fixed by chown/chmod, never by
    restoring a key or a backup."""


class TemplateError(ConfigError):
    """A Stampli template that cannot be used; the message names the bad field."""


class NotBuiltError(ConfigError):
    """A command whose capability is not built yet: says so instead of pretending."""


class AuthRequiredError(FbstampliError):
    exit_code = ExitCode.AUTH


class StateUnusableError(FbstampliError):
    exit_code = ExitCode.STATE


class StateDamagedError(StateUnusableError):
    """The state file is empty, cut short, overwritten or has a damaged page: not the key."""


class TemporaryError(FbstampliError):
    exit_code = ExitCode.TEMPFAIL


class LockHeldError(TemporaryError):
    """Another run holds the home's lock; `held_seconds` says for how long (0 if unknown).
    `quiet_seconds`: how long it is only logged under -q (the home's
    `monitoring.quiet_transient_hours`, set where the settings are known)."""

    held_seconds: float = 0.0
    quiet_seconds: float = 2 * 3600.0


class RemoteUnavailableError(TemporaryError):
    """FreshBooks or the SFTP server could not be reached, or kept failing."""


class BudgetExceeded(BaseException):
    """A business of `sync --all` ran past its time budget and is being stopped.

    Raised from the SIGTERM handler of that business's own process, so it may strike
    anywhere: a BaseException, so that no `except Exception` mistakes it for a failed
    upload or request (which would spend a delivery attempt); the unwinding rolls back
    the open transaction and the journal makes the rest safe, as after a kill.
    """

    exit_code = ExitCode.TEMPFAIL


class RemoteError(FbstampliError):
    """A remote answered, but with something we cannot use (not worth retrying now)."""

    exit_code = ExitCode.PARTIAL


class HostKeyError(ConfigError):
    """The SFTP server's host key is not the pinned one: possible interception."""


class RenderError(FbstampliError):
    """One object cannot be rendered with the template (e.g. its vendor is unknown).

    The run goes on without it; the problem is reported and the run exits 1.
    """

    exit_code = ExitCode.PARTIAL


class ExportParseError(FbstampliError):
    """A Stampli export file that cannot be parsed; it is quarantined, the run goes on."""

    exit_code = ExitCode.PARTIAL

    def __init__(self, file: str, line: int, column: str | None, reason: str) -> None:
        where = f"{file}, line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.column = column
        self.reason = reason


class DiskFullError(StateUnusableError):
    """The state could not be written for want of room: freeing space fixes it, never a key
    or a backup (the message names the file system and its room)."""
