"""The reliability suite's summary lines, printed once at the end of every pytest run.

Tests that attack the program (faults, crashes, fuzzing, secret scans) record what they did
here; `tests/conftest.py` prints the lines through pytest's `terminal_summary` hook, so they
appear in plain `python -m pytest` output (and CI's log) without `-s`. A line is recorded
before a test asserts, so a failing run still says what it saw. Under pytest-xdist each worker
process has its own collector: it hands `export()` to the controller when it finishes, and the
controller `merge()`s every worker's part before it prints, so the summary stays whole.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Summary:
    """Lines in the order they were recorded, plus counters summed over the whole session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lines: list[str] = []
        self.counts: Counter[str] = Counter()

    def line(self, text: str) -> None:
        with self._lock:
            self.lines.append(text)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] += amount

    def export(self) -> dict[str, Any]:
        """This process's part, as plain data xdist can carry from a worker to the controller."""
        with self._lock:
            return {"lines": list(self.lines), "counts": dict(self.counts)}

    def merge(self, part: Mapping[str, Any]) -> None:
        """Add a worker's `export()`: its lines after those already here, its counts summed."""
        with self._lock:
            self.lines.extend(str(line) for line in part.get("lines", []))
            self.counts.update({str(k): int(v) for k, v in part.get("counts", {}).items()})

    def render(self) -> list[str]:
        """Every line, then the session totals that only make sense summed."""
        with self._lock:
            lines = list(self.lines)
            counts = Counter(self.counts)
        if counts["fuzz cases"]:
            lines.append(f"fuzz cases tried: {counts['fuzz cases']}")
        if counts["exactly-once faults"]:
            lines.append(
                f"exactly-once machine: {counts['exactly-once faults']} push runs under a fault"
                " or kill, no duplicate or lost version"
            )
        if counts["secret scans"]:
            lines.append(
                f"secrets found: {counts['secrets found']} "
                f"({counts['secret scans']} secret-in-output checks)"
            )
        return lines


# One collector per pytest process: the session's, or one xdist worker's part of it.
SUMMARY = Summary()


def fuzz_case(test: Callable[P, R]) -> Callable[P, R]:
    """Count every example hypothesis feeds the wrapped property (put it under `@given`)."""

    @functools.wraps(test)
    def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        SUMMARY.add("fuzz cases")
        return test(*args, **kwargs)

    return counted


def find_secrets(secrets: Mapping[str, str], places: Mapping[str, str | bytes]) -> list[str]:
    """Every (secret, place) where a secret shows up, as `name in place`; counted in the summary.

    Secrets are looked for as text and as bytes, so binary places (a core file, the raw
    state) are searched as well as outputs and logs.
    """
    found: list[str] = []
    for secret_name, secret in secrets.items():
        if len(secret) < 8:
            raise ValueError(f"{secret_name} is too short to grep for meaningfully")
        for place_name, content in places.items():
            SUMMARY.add("secret scans")
            haystack = content if isinstance(content, bytes) else content.encode("utf-8", "replace")
            if secret.encode("utf-8") in haystack:
                found.append(f"{secret_name} in {place_name}")
    SUMMARY.add("secrets found", len(found))
    return found
