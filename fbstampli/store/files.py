"""The state file on disk: its mode, replacing it whole, and what its failures mean to us.

Leaf helpers of `Store`; nothing here holds a connection.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

from fbstampli.errors import StateUnusableError


def fix_mode(path: Path) -> None:
    """Owner read and write only, the WAL and shared-memory files too."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with suppress(FileNotFoundError):
            os.chmod(candidate, 0o600)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_state(source: Path, state: Path) -> None:
    """Put a complete, closed copy in place of the state; the old WAL must not outlive it."""
    os.replace(source, state)
    _fsync(state.parent)
    for suffix in ("-wal", "-shm"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)


def statements(script: str) -> list[str]:
    """A migration script's statements, run one at a time."""
    return [part.strip() for part in script.split(";") if part.strip()]


def translate(error: Exception, path: Path) -> Exception:
    """A SQLCipher failure as the error a user can act on: access, locked, full, damaged."""
    text = str(error)
    if "readonly" in text or "unable to open" in text:
        from fbstampli.access import unwritable_state

        denied = unwritable_state(path)
        if denied is not None:
            return denied
        if "readonly" in text:  # it was read-only when opened; opening set it back to 0600
            from fbstampli.errors import LocalAccessError

            return LocalAccessError(
                f"cannot write {path}: it was read-only when this run opened it; its mode is "
                "0600 (owner read and write) now: run the command again"
            )
    if "locked" in text or "busy" in text:
        from fbstampli.errors import TemporaryError

        return TemporaryError(f"{path} stayed locked by another process; try again shortly")
    if "full" in text or "disk I/O" in text:
        from fbstampli.access import free_space_fix
        from fbstampli.errors import DiskFullError

        return DiskFullError(
            f"cannot write {path}: the disk is full or failing; {free_space_fix(path)}"
        )
    if "malformed" in text:
        from fbstampli.errors import StateDamagedError

        return StateDamagedError(
            f"{path} is damaged ({text}): run `fbstampli doctor`, then "
            "restore the last good backup with `fbstampli state restore FILE`"
        )
    return StateUnusableError(f"{path}: {text}")
