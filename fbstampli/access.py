"""Permission, ownership and room problems of local paths, named with the fix that works.

A home another user owns, a read-only state file or an unwritable log folder
is neither a bug (exit 70) nor a bad key (exit 4): it is fixed with `chown`
or `chmod`, or by running as the owner, and the message says which. A full
disk is fixed by freeing space: the message names the file system and its room.
"""

from __future__ import annotations

import errno
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from fbstampli.errors import LocalAccessError

ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _existing(path: Path) -> Path:
    """The path itself, or the nearest folder above it that exists (never raises: a folder
    that cannot be searched makes what is inside it look absent)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return path


def blocking_path(path: Path, *, write: bool = True) -> Path:
    """The path, or the folder above it, that this process may not use (best guess)."""
    for folder in reversed(path.parents):  # a folder on the way that cannot be entered
        if os.path.isdir(folder) and not os.access(folder, os.X_OK):
            return folder
    target = _existing(path)
    if target == path:
        mode = (os.W_OK if write else os.R_OK) | (os.X_OK if os.path.isdir(path) else 0)
        if not os.access(path, mode):
            return path
    folder = target if target != path and os.path.isdir(target) else target.parent
    if write and not os.access(folder, os.W_OK | os.X_OK):
        return folder
    return target


def access_message(path: Path, *, action: str = "write", read_only_fs: bool = False) -> str:
    """One line: what could not be done to which path, whose it is, and the fix."""
    me = _user(os.geteuid())
    if read_only_fs:
        return (
            f"cannot {action} {path}: its file system is mounted read-only; "
            "use a home on a writable disk (--home or FBSTAMPLI_HOME)"
        )
    blocker = blocking_path(path, write=action != "read")
    try:
        owner = _user(os.lstat(blocker).st_uid)
    except OSError:
        owner = me
    where = "" if blocker == path else f" ({blocker} is not writable)"
    if owner != me:
        fix = (
            f"{blocker} belongs to {owner} and this runs as {me}: run fbstampli as {owner}, "
            f"or `chown -R {me} {blocker}`"
        )
    else:
        fix = f"make it usable by {me}: `chmod u+rwX {blocker}`"
    return f"cannot {action} {path} (permission denied){where}; {fix}"


def access_error(error: OSError, *, action: str = "write") -> LocalAccessError | None:
    """A `LocalAccessError` for an OSError that is a permission problem, else None."""
    if error.errno not in ACCESS_ERRNOS or not error.filename:
        return None
    path = Path(os.fsdecode(error.filename))
    return LocalAccessError(
        access_message(path, action=action, read_only_fs=error.errno == errno.EROFS)
    )


def unwritable_state(state: Path) -> LocalAccessError | None:
    """SQLite says "readonly database" or "unable to open" when the state file, its folder or
    its -wal/-shm files cannot be written: which one, said as a permission problem."""
    for candidate in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        if candidate.exists() and not os.access(candidate, os.R_OK | os.W_OK):
            return LocalAccessError(access_message(candidate))
    if not os.access(state.parent, os.W_OK | os.X_OK):
        return LocalAccessError(access_message(state))
    return None


# ---- room on the disk ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Space:
    """The file system holding a path: where it is mounted, its type, and its room."""

    mount: str
    fs_type: str
    free: int  # bytes this user may still write
    total: int

    def __str__(self) -> str:
        """'/var (ext4): 12 MB free of 20 GB'."""
        kind = f" ({self.fs_type})" if self.fs_type else ""
        return f"{self.mount}{kind}: {size_text(self.free)} free of {size_text(self.total)}"


def space_of(path: Path) -> Space | None:
    """The room on the file system of `path` (or of the nearest folder above it that exists);
    None when the system will not say."""
    target = _existing(path)
    try:
        status = os.statvfs(target)
    except OSError:
        return None
    mount, fs_type = _mount_of(target)
    return Space(
        mount, fs_type, status.f_bavail * status.f_frsize, status.f_blocks * status.f_frsize
    )


def _mount_of(path: Path) -> tuple[str, str]:
    """The longest mount point above `path` in /proc/self/mounts, with its type; "/" and ""
    where that table cannot be read."""
    real = os.path.realpath(path)
    best = ("/", "")
    try:
        table = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return best
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def size_text(amount: int) -> str:
    """'512 B', '3.4 MB', '12 GB': decimal units, three figures at most."""
    value = float(amount)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" or value >= 10 else f"{value:.1f} {unit}"
        value /= 1000
    return f"{amount} B"


def free_space_fix(path: Path) -> str:
    """What to do about a full disk under `path`: which file system, how much room it has."""
    space = space_of(path)
    if space is None:
        return f"free space on the disk holding {path}, then re-run"
    return f"free space on {space}, then re-run"
