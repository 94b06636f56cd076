"""doctor's checks of this machine that need no opened state, and what it says when the state
cannot be opened: the room on the home's disk, the fix for each way opening fails, and the
checks left to run (or named as skipped, with why) so that one failure never hides the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fbstampli.access import Space, free_space_fix, size_text, space_of
from fbstampli.errors import (
    ConfigError,
    DiskFullError,
    FbstampliError,
    LocalAccessError,
    StateDamagedError,
)
from fbstampli.options import Options
from fbstampli.paths import Paths


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict (`services.doctor` shows it); defined here, below the checks."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False  # not checked (the detail says why); not a failure


# Below this much room the state cannot be trusted to take a sync's writes: a checkpoint of
# the WAL and a backup each want about the state's size again.
LOW_SPACE = 64_000_000
# The checks that read the opened state (its key, credentials and learnt facts).
NEED_THE_STATE = (
    "key",
    "state integrity",
    "FreshBooks",
    "FreshBooks behaviour",
    "SFTP login",
    "SFTP inbound writable",
    "SFTP outbound listable",
)


def room_needed(state_size: int) -> int:
    """Free bytes a home needs: the state twice over (a WAL checkpoint, a backup), at least
    LOW_SPACE."""
    return max(LOW_SPACE, 2 * state_size)


def disk_check(paths: Paths, *, measure: Callable[[Path], Space | None] = space_of) -> CheckResult:
    """The room on the file system holding the home, with how much and which one it is."""
    space = measure(paths.home)
    if space is None:
        return CheckResult(
            "disk space", True, f"skipped: no figures for {paths.home}", skipped=True
        )
    try:
        state_size = paths.state.stat().st_size
    except OSError:
        state_size = 0
    needed = room_needed(state_size)
    if space.free < needed:
        return CheckResult(
            "disk space",
            False,
            f"{space}; the state ({size_text(state_size)}) needs {size_text(needed)} to be safe",
            f"free space on {space.mount}",
        )
    return CheckResult("disk space", True, f"{paths.home} is on {space}")


def open_failure(error: FbstampliError, paths: Paths) -> CheckResult:
    """The state would not open: one result whose fix fits the cause, never a key for a full
    disk, a permission or a damaged file."""
    if isinstance(error, LocalAccessError):
        # A permission problem: restoring a key or a backup would not help, and could hurt.
        detail, _, fix = str(error).partition("; ")
        return CheckResult("home access", False, detail, fix)
    if isinstance(error, DiskFullError):
        detail, _, fix = str(error).partition("; ")
        return CheckResult("state file", False, detail, fix or free_space_fix(paths.state))
    if isinstance(error, StateDamagedError):  # the file itself, whatever the key
        return CheckResult(
            "state file",
            False,
            str(error).partition("; it was left")[0],
            "the key is not at fault: `fbstampli state restore FILE` from the newest backup",
        )
    return CheckResult("key and state", False, str(error), "restore the key or a backup (exit 4)")


def without_the_state(options: Options, why: str) -> list[CheckResult]:
    """Every later check, when the state could not be opened: those that need it are named as
    skipped with `why`; the template and the clock are still judged."""
    results = [CheckResult(name, True, f"skipped: {why}", skipped=True) for name in NEED_THE_STATE]
    results.insert(2, _template(options))
    return results


def _template(options: Options) -> CheckResult:
    from fbstampli.runtime import load_options_settings
    from fbstampli.stampli.render import TemplateRenderer

    try:
        settings = load_options_settings(options)
    except ConfigError:
        return CheckResult("template", True, "skipped: the settings are not valid", skipped=True)
    template = settings.stampli.template
    try:
        TemplateRenderer.load(Path(template) if template else None)
    except FbstampliError as error:
        return CheckResult(
            "template",
            False,
            str(error),
            "fix the named field, then `fbstampli template check FILE`",
        )
    return CheckResult("template", True, "the Stampli template is valid")
