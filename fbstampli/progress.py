"""What a long command reports as it goes, for a terminal's progress bars.

A Protocol, so services and engines report progress without knowing whether
anything shows it; `cli/output.py` implements it with rich, on a terminal only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def page(self, progress: Any) -> None:
        """A page of a FreshBooks listing was read (`freshbooks.client.PageProgress`)."""

    def stage(self, label: str, total: int | None = None) -> Advance:
        """A new stage begins; the previous one is done. Returns how to advance it."""


class NoProgress:
    """Nothing to show: off a terminal, under -q or --json."""

    def page(self, progress: Any) -> None:
        return None

    def stage(self, label: str, total: int | None = None) -> Advance:
        return _ignore


def _ignore(amount: int = 1) -> None:
    return None
