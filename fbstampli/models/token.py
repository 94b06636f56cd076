"""The FreshBooks token pair, and the port the state implements to keep it.

Here, below both rooms, because `freshbooks/` refreshes it and `store/`
keeps it: neither needs the other to name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime  # aware UTC: created_at + expires_in, as FreshBooks' SDKs compute it
    scope: str = ""

    def expires_within(self, margin: timedelta, now: datetime) -> bool:
        return self.expires_at - margin <= now


class TokenStore(Protocol):
    """Where the current token pair lives; `save` must be durable when it returns."""

    def load(self) -> Token | None: ...

    def save(self, token: Token) -> None: ...
