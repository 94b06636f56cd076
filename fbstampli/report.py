"""What a command did, as data: counts, problems and the exit code they imply.

A failed record is not an exception; it is a count and a problem line here,
and the report turns that into `PARTIAL` for cron to notice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fbstampli.errors import ExitCode


@dataclass(slots=True)
class RunReport:
    command: str
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # What the command did, as sentences for people (cli/summaries.py makes them from the
    # counts when the command sets none); --json keeps the counts.
    summary: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    attention: bool = False  # e.g. reconcile mismatches, for --fail-on-mismatch
    # A remote could not be reached: the run ends 75 ("try again later"), as it does when
    # FreshBooks is unreachable, rather than 1.
    unreachable: bool = False
    # Those of `problems` that a condition passing by itself caused (a remote unreachable):
    # under -q they are said only once it has lasted (monitoring.quiet_transient_hours).
    transient: list[str] = field(default_factory=list)
    silenced: list[str] = field(default_factory=list)  # of `problems`: logged, not shown (-q)
    # The exit code of an error a stage was stopped by while the others went on (e.g. 3).
    stopped_with: ExitCode | None = None

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def merge(self, other: RunReport) -> None:
        for name, amount in other.counts.items():
            self.add(f"{other.command}.{name}", amount)
        self.problems.extend(other.problems)
        self.notes.extend(other.notes)
        self.attention = self.attention or other.attention
        self.unreachable = self.unreachable or other.unreachable
        self.transient.extend(other.transient)
        self.stopped_with = self.stopped_with or other.stopped_with

    @property
    def exit_code(self) -> ExitCode:
        if self.stopped_with is not None:
            return self.stopped_with
        if self.unreachable:
            return ExitCode.TEMPFAIL
        return ExitCode.PARTIAL if self.problems else ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": int(self.exit_code),
            "counts": dict(sorted(self.counts.items())),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "items": list(self.items),
        }
