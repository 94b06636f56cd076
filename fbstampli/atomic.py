"""Every file the program writes whole: a fresh temporary beside it, then one rename.

A predictable temporary name (`.report.csv.tmp`) in a folder another user can
write is an invitation: they plant a link there and our write goes through it
(into their reach, or over a file of root's). So each temporary here is
created exclusively, never through a link (`mkstemp`: `O_CREAT|O_EXCL|
O_NOFOLLOW`, mode 0600, a random name), in the target's own folder so the
rename is atomic; the rename replaces whatever name sits at the target, a
link included, without following it. On any failure the temporary is removed
and the target is as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMPORARY_SUFFIX = ".tmp"  # pull's clean-up of a killed run's litter looks for `.*.tmp`


def fresh_temporary(target: Path) -> Path:
    """An empty file of ours, 0600, beside `target`, for writers that need a path (SQLCipher).

    The caller renames it over `target` (`replace_with`) or removes it.
    """
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name[:100]}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    os.close(fd)
    return Path(name)


def create_exclusive(path: Path, mode: int = 0o600) -> BinaryIO:
    """Open a new file at `path` for writing; fails if anything (a link too) is there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, mode), "wb")


def fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable; a file system that cannot is not our failure."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_with(temporary: Path, target: Path, mode: int = 0o600) -> None:
    """Give `temporary` its final mode, make it durable, and rename it over `target`."""
    os.chmod(temporary, mode)
    fd = os.open(temporary, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    fsync_folder(target.parent)


@contextmanager
def atomic_writer(target: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Write the body's bytes to `target` whole or not at all (through the descriptor
    `mkstemp` made, never reopened by name)."""
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name[:100]}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_folder(target.parent)


def write_atomic(target: Path, data: bytes, mode: int = 0o600) -> None:
    """`target` now holds exactly `data`, written through a fresh temporary beside it."""
    with atomic_writer(target, mode) as handle:
        handle.write(data)
