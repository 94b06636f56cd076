"""Which process holds a handshake window, and whether it still runs (issue #25, finding 5).

A window is opened by `webhooks register` or `verify --resend` and read by the
listener, another process on the same machine. Recording the opener's pid and
start time lets the listener close the window the moment that command dies,
instead of when its time runs out. Only where both see the same process table
(Linux, one pid namespace) can this be told; elsewhere the window's time bound
is all there is, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_PROC = Path("/proc")


def _namespace() -> str | None:
    try:
        return os.readlink(_PROC / "self" / "ns" / "pid")
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of its stat); None if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def this_process() -> dict[str, Any] | None:
    """This process, as a window records its holder; None where it cannot be told later."""
    namespace = _namespace()
    started = _start_time(os.getpid())
    if namespace is None or started is None:
        return None
    return {"pid": os.getpid(), "started": started, "ns": namespace}


def gone(holder: object) -> bool:
    """True only when the recorded holder has surely ended (or the record is damaged)."""
    if holder is None:
        return False
    if not isinstance(holder, dict):
        return True
    pid, started, namespace = holder.get("pid"), holder.get("started"), holder.get("ns")
    if not isinstance(pid, int) or not isinstance(started, str) or not isinstance(namespace, str):
        return True
    if _namespace() != namespace:
        return False  # another pid namespace (a container): cannot tell, the time bound holds
    return _start_time(pid) != started
