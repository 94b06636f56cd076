"""Process hardening done once at start-up: this process's memory stays its own.

A run holds the state key, OAuth tokens, the SFTP password and webhook verifiers in
memory. A crash must not write them to a core file, and another process of the same
user (a compromised tool, a curious plugin) must not read them through
`/proc/<pid>/mem` or ptrace. Linux only; elsewhere, and wherever the kernel refuses,
this quietly does nothing: hardening must never be the reason a run fails.
"""

from __future__ import annotations

import sys
from contextlib import suppress

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


def forbid_core_dumps() -> None:
    """No core file for this process, and no ptrace or /proc/<pid>/mem access to it.

    `RLIMIT_CORE` 0 (soft and hard, so nothing in the process can raise it again)
    stops a core file; `PR_SET_DUMPABLE` 0 also stops a core piped to a handler
    (`core_pattern` starting with `|`, which ignores the limit) and makes the kernel
    refuse same-user ptrace and reads of `/proc/<pid>/mem` and `/proc/<pid>/environ`.
    """
    if not sys.platform.startswith("linux"):
        return
    import resource

    # A sandbox that forbids setrlimit still gets the prctl below, and a libc without
    # prctl still has the limit: each one alone is worth having.
    with suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import ctypes

    with suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
