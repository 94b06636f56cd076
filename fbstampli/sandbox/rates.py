"""Faults at a seeded rate, the part both sandbox servers share.

Whether a step fails is drawn from a RNG seeded with `seed`, so a sequential
client sees the same faults run after run; which fault it gets is the next, in
turn, of those that fit the step, so a handful of faults covers every kind.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class Dice:
    """`known` are the actions a server can play; `actions` the ones asked for.

    `injected` counts what was handed out, per action; `limit` caps the total.
    """

    rate: float
    seed: int
    known: tuple[str, ...]
    actions: tuple[str, ...]
    limit: int | None = None
    injected: Counter[str] = field(default_factory=Counter)
    _random: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.actions) - set(self.known)
        if unknown:
            raise ValueError(f"unknown fault actions {sorted(unknown)}")
        self._random = random.Random(self.seed)  # noqa: S311 - reproducible faults, not secrets

    def roll(self, fitting: Sequence[str]) -> str | None:
        """The action a step that could suffer `fitting` gets, or None; thread-safe."""
        chosen = [action for action in fitting if action in self.actions]
        if not chosen:
            return None
        with self._lock:
            if self.limit is not None and sum(self.injected.values()) >= self.limit:
                return None
            if self._random.random() >= self.rate:
                return None
            action = chosen[sum(self.injected[a] for a in chosen) % len(chosen)]
            self.injected[action] += 1
        return action

    def choice(self, options: Sequence[T]) -> T:
        """A detail of a fault (which status, say), from the same seeded stream."""
        with self._lock:
            return self._random.choice(options)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.injected.values())
