"""One run at a time per home, with a kernel lock that dies with its process.

`fcntl.flock` on `<home>/run.lock`: the kernel releases it when the holder
exits, even on SIGKILL, so there is never a stale lock to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fbstampli.errors import LockHeldError
from fbstampli.paths import open_home_file

_held: set[str] = set()  # run locks this process holds now, by path


def holds_run_lock(path: Path) -> bool:
    """Whether this process holds the run lock at `path` (a token refresh needs it)."""
    return str(path) in _held


@contextmanager
def run_lock(path: Path, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the run lock for the body; raise `LockHeldError` if another run has it.

    `wait_seconds` lets a short-lived caller (the webhook worker) queue behind
    a cron run briefly instead of failing at once.
    """
    fd = open_home_file(path, os.O_RDWR | os.O_CREAT)  # never through a planted link
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    held = _held_seconds(fd)
                    error = LockHeldError(
                        f"another fbstampli run{holder} is using {path.parent}"
                        + (f" (for {round(held / 60)} min)" if held >= 60 else "")
                        + "; nothing was done: try again when it has finished (cron's next "
                        "run does so by itself)"
                    )
                    error.held_seconds = held
                    raise error from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        _held.add(str(path))
        try:
            yield
        finally:
            _held.discard(str(path))
    finally:
        os.close(fd)


@contextmanager
def listener_lock(path: Path, *, holder: str) -> Iterator[None]:
    """Held by `serve-webhook` while it serves, and by `state restore` / `key rotate`.

    The listener keeps the state open for its whole life; a restore or a rotation
    swaps the file under it, and events it then accepts go into the old, unlinked
    file and are lost. So each side refuses while the other holds this lock
    (`holder` says who tries, for the message the other one gets).
    """
    fd = open_home_file(path, os.O_RDWR | os.O_CREAT)  # never through a planted link
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another command"
            raise LockHeldError(
                f"{who} is using {path.parent}; {holder} cannot run at the same time: "
                "stop it (or wait for it), then run this again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{holder} (pid {os.getpid()})".encode())
        yield
    finally:
        os.close(fd)


def _held_seconds(fd: int) -> float:
    """How long the holder has had the lock: it writes its pid on taking it."""
    try:
        return max(0.0, time.time() - os.fstat(fd).st_mtime)
    except OSError:
        return 0.0


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""
