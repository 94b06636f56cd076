"""Permission and ownership problems of local paths, named as such with the fix that works.

A home another user owns, a read-only state file or an unwritable log folder
is neither a bug (exit 70) nor a bad key (exit 4): it is fixed with `chown`
or `chmod`, or by running as the owner, and the message says which.
"""

from __future__ import annotations

import errno
import os
import pwd
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
