"""Grouping deliveries into files: one kind per file, bounded rows, stable order.

Pure. Kinds go in delivery order (vendors, bills, payments) so that file-name
order is dependency order; within a kind, deliveries keep their queue order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from fbstampli.models import Kind


@dataclass(frozen=True, slots=True)
class Pending:
    delivery_id: int
    kind: Kind
    fb_id: int
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class PlannedFile:
    kind: Kind
    members: tuple[Pending, ...]

    @property
    def rows(self) -> list[tuple[str, ...]]:
        return [row for member in self.members for row in member.rows]


def plan_files(pending: Sequence[Pending], kind: Kind, *, max_rows: int) -> list[PlannedFile]:
    """Split one kind's pending deliveries into files of at most `max_rows` rows.

    A delivery's rows are never split across files (a bill's lines stay together).
    """
    return list(iter_files(pending, kind, max_rows=max_rows))


def iter_files(pending: Iterable[Pending], kind: Kind, *, max_rows: int) -> Iterator[PlannedFile]:
    """`plan_files` one file at a time, so only one file's deliveries are held at once."""
    current: list[Pending] = []
    count = 0
    for item in pending:
        if item.kind is not kind:
            continue
        if current and count + len(item.rows) > max_rows:
            yield PlannedFile(kind, tuple(current))
            current, count = [], 0
        current.append(item)
        count += len(item.rows)
    if current:
        yield PlannedFile(kind, tuple(current))
