"""A file on Stampli's SFTP server, and the temporary name an upload is written under.

Here, below both rooms, because the SFTP adapter produces them and the sync
engine's delivery journal reasons about them: the adapter need not import
the engine, nor the engine the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RemoteFile:
    name: str
    size: int | None  # some SFTP servers report no size
    mtime: datetime | None


def part_name(final_name: str) -> str:
    """The temporary name of an upload; it never matches a consumer's `*.csv` glob."""
    return f".{final_name}.part"


def temporary_name(name: str) -> str:
    """Where `replace_file` writes `name` first: a dot-name, as `part_name`."""
    return f"{name}.part" if name.startswith(".") else part_name(name)
