"""The local copies of Stampli's exports: their names, kept inside the exports folder and
short enough for any file system, and their digests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from fbstampli.errors import RemoteError

_HASH_BLOCK = 1024 * 1024


def local_path(folder: Path, name: str) -> Path:
    """`folder/name`, refused (not followed) if it would land anywhere but directly in `folder`.

    The transport already rejects unsafe names; this is the second lock on the
    same door, because a local path built from a remote name is how files get
    written over `~/.ssh/authorized_keys`.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise RemoteError(f"refusing export name {name!r}: it would leave {folder}")
    candidate = folder / name
    if candidate.resolve().parent != folder.resolve():
        raise RemoteError(f"refusing export name {name!r}: it would leave {folder}")
    return candidate


# File names are 255 bytes at most on most file systems; the row id and a quarantine suffix
# must fit beside the remote name, so a longer one is shortened (and made unique) locally.
MAX_LOCAL_NAME_BYTES = 200


def local_name(file_id: int, name: str) -> str:
    """The local copy's name for row `file_id`: `<id>-<name>`, shortened when too long.

    A remote name of 249+ bytes once failed every pull with ENAMETOOLONG; it now
    keeps its first 100 bytes, a digest of the whole name, and a short suffix.
    """
    full = f"{file_id:06d}-{name}"
    if len(full.encode("utf-8", "surrogateescape")) <= MAX_LOCAL_NAME_BYTES:
        return full
    raw = name.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(raw).hexdigest()[:16]
    suffix = Path(name).suffix
    suffix = suffix if 0 < len(suffix.encode("utf-8", "surrogateescape")) <= 10 else ""
    stem = raw[:100].decode("utf-8", "ignore")
    return f"{file_id:06d}-{stem}-{digest}{suffix}"


def sha256_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while block := stream.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()
