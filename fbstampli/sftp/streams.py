"""The bytes of a transfer: hashing what was read, and the local side of a download."""

from __future__ import annotations

import hashlib
import os
from contextlib import suppress
from pathlib import Path
from typing import IO, Protocol

from fbstampli.atomic import create_exclusive
from fbstampli.errors import ConfigError, FbstampliError, RemoteError, TemporaryError
from fbstampli.paths import out_of_room

BLOCK = 32 * 1024  # paramiko's largest single SFTP read/write request


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def hash_stream(handle: Readable) -> str:
    digest = hashlib.sha256()
    while block := handle.read(BLOCK):
        digest.update(block)
    return digest.hexdigest()


class LocalCopy:
    """The local side of a download: its failures are this machine's, never the server's.

    Inside the transfer, an `OSError` would read as an SFTP status; here a local
    one becomes its own error naming the local folder (a full disk is temporary).
    """

    def __init__(self, temporary: Path, folder: Path) -> None:
        self._temporary = temporary
        self._folder = folder
        try:
            self._file: IO[bytes] = create_exclusive(temporary)  # never a planted link
        except OSError as error:
            raise self._failure(error) from None

    def _failure(self, error: OSError) -> FbstampliError:
        if out_of_room(error):
            return TemporaryError(
                f"cannot write the local copy in {self._folder}: the disk is full; "
                "free space and re-run"
            )
        return ConfigError(
            f"cannot write the local copy in {self._folder} ({error.strerror}); "
            "check that folder's permissions"
        )

    def __enter__(self) -> LocalCopy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with suppress(OSError):
            self._file.close()

    def write(self, block: bytes) -> int:
        try:
            return self._file.write(block)
        except OSError as error:
            raise self._failure(error) from None

    def finish(self, dest: Path) -> None:
        """Flush, fsync and rename into place: the copy is whole or not there."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._temporary, dest)
        except OSError as error:
            raise self._failure(error) from None


def copy_capped(source: Readable, sink: LocalCopy, max_bytes: int, path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while block := source.read(BLOCK):
        size += len(block)
        if size > max_bytes:
            raise RemoteError(f"{path} is larger than the {max_bytes}-byte limit; not downloaded")
        digest.update(block)
        sink.write(block)
    return size, digest.hexdigest()
