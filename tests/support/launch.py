"""Exec a program with core dumps allowed and, optionally, without any capability.

    python -m tests.support.launch [--no-caps] -- PROGRAM [ARGS...]

Raises the core-size limit to unlimited first, as `ulimit -c unlimited` does, so a
program that still dumps core when it crashes is caught doing it. `--no-caps` drops every
capability for good (bounding set, then effective/permitted/inheritable) before the exec:
a root test runner may read any process's memory whatever that process asked for, so the
tests that check a process is unreadable by its own user run both sides without them, as
an ordinary user's processes are. Linux only.
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys
from pathlib import Path

PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Leave this process (and what it execs, even as root) with no capability at all."""
    libc = ctypes.CDLL(None, use_errno=True)
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for capability in range(last + 1):
        # Only a process holding CAP_SETPCAP may shrink its bounding set; one without it has
        # nothing an exec could give back anyway.
        libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    status = Path("/proc/self/status").read_text()
    held = [line for line in status.splitlines() if line.startswith(("CapEff", "CapBnd"))]
    if any(int(line.split()[1], 16) for line in held):
        raise RuntimeError(f"capabilities left after dropping them: {held}")


def main(argv: list[str]) -> None:
    no_caps = "--no-caps" in argv[: argv.index("--")]
    program = argv[argv.index("--") + 1 :]
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):  # not root: as far as the hard limit allows
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))
    if no_caps:
        drop_capabilities()
    os.execvp(program[0], program)  # noqa: S606 - exec'ing the program is the point


if __name__ == "__main__":
    main(sys.argv[1:])
