"""The SFTP transport to Stampli: `.part` uploads renamed into place, listings, downloads.

It satisfies `sync.ports.Transport`; every failure leaves it translated by `errors`.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import paramiko

from fbstampli.errors import RemoteError, RemoteUnavailableError
from fbstampli.models.remote import RemoteFile, part_name, temporary_name
from fbstampli.sftp.connect import POSIX_RENAME, SFTPClient, open_session
from fbstampli.sftp.errors import translate
from fbstampli.sftp.streams import BLOCK, LocalCopy, copy_capped, hash_stream
from fbstampli.sftp.target import SftpTarget, check_directory, check_name, join_remote

log = logging.getLogger(__name__)


class SftpTransport:
    """One SSH connection and SFTP session, reused for the whole run."""

    def __init__(self, target: SftpTarget, client: paramiko.SSHClient, sftp: SFTPClient) -> None:
        self._target = target
        self._client = client
        self._sftp = sftp
        self._closed = False

    @classmethod
    def connect(cls, target: SftpTarget, *, timeout: float) -> SftpTransport:
        """Connect, accepting only the pinned host key, and open the SFTP session (see
        `open_session`; `timeout` bounds every step, so a silent server cannot hang a run)."""
        client, sftp = open_session(target, timeout=timeout)
        return cls(target, client, sftp)

    @property
    def has_posix_rename(self) -> bool:
        return POSIX_RENAME in self._sftp.server_extensions

    @contextmanager
    def _mapped(self, action: str, path: str) -> Iterator[None]:
        if self._closed:
            raise RemoteUnavailableError(f"SFTP connection to {self._target.address} is closed")
        try:
            yield
        except (paramiko.SSHException, OSError, EOFError) as error:
            # paramiko reports a dead connection as a bare OSError("Socket is closed"),
            # which reads like an SFTP status; the transport's state tells them apart.
            transport = self._client.get_transport()
            gone = transport is None or not transport.is_active()
            raise translate(error, action, path, self._target.address, connecting=gone) from None

    def list_files(self, directory: str) -> list[RemoteFile]:
        """Regular files in `directory` (temporary `.part` names included), by name."""
        folder = check_directory(directory) or "."
        with self._mapped("list", folder):
            entries = self._sftp.listdir_attr(folder)
        files: list[RemoteFile] = []
        for entry in entries:
            if entry.st_mode is not None and not stat.S_ISREG(entry.st_mode):
                continue
            try:
                name = check_name(entry.filename)
            except RemoteError:
                log.warning("ignoring remote file with an unsafe name %r", entry.filename)
                continue
            mtime = (
                datetime.fromtimestamp(entry.st_mtime, UTC) if entry.st_mtime is not None else None
            )
            files.append(RemoteFile(name, entry.st_size, mtime))
        return sorted(files, key=lambda remote: remote.name)

    def _exists(self, path: str) -> bool:
        try:
            self._sftp.stat(path)
        except OSError as error:
            if error.errno == errno.ENOENT:
                return False
            raise
        return True

    def exists(self, directory: str, name: str) -> bool:
        path = join_remote(directory, name)
        with self._mapped("look for", path):
            return self._exists(path)

    def write_part(self, directory: str, final_name: str, data: bytes) -> None:
        """Write `.<final_name>.part`, then check it on the server before anyone renames it.

        The size comes from `stat`. A server that reports no size (some do) gets the file read
        back and compared by sha256 instead, with a warning, since that costs a download.
        """
        path = join_remote(directory, part_name(check_name(final_name)))
        with self._mapped("upload", path):
            with self._sftp.open(path, "wb") as handle:
                handle.set_pipelined(True)
                for offset in range(0, len(data), BLOCK):
                    handle.write(data[offset : offset + BLOCK])
            size = self._sftp.stat(path).st_size
            if size is None:
                log.warning(
                    "SFTP server %s reports no file size; verifying %s by reading it back",
                    self._target.address,
                    path,
                )
                with self._sftp.open(path, "rb") as handle:
                    digest = hash_stream(handle)
                if digest != hashlib.sha256(data).hexdigest():
                    raise RemoteError(f"uploaded {path} differs from what was sent; will re-send")
            elif size != len(data):
                raise RemoteError(
                    f"uploaded {path} has {size} bytes on the server, {len(data)} were sent"
                )

    def write_part_file(self, directory: str, final_name: str, source: Path) -> None:
        """`write_part` for a local file too big to hold: streamed a block at a time."""
        path = join_remote(directory, part_name(check_name(final_name)))
        with self._mapped("upload", path):
            with source.open("rb") as local, self._sftp.open(path, "wb") as handle:
                handle.set_pipelined(True)
                sent = 0
                while block := local.read(BLOCK):
                    handle.write(block)
                    sent += len(block)
            size = self._sftp.stat(path).st_size
            if size is None:
                with self._sftp.open(path, "rb") as handle:
                    digest = hash_stream(handle)
                with source.open("rb") as local:
                    if digest != hash_stream(local):
                        raise RemoteError(
                            f"uploaded {path} differs from what was sent; will re-send"
                        )
            elif size != sent:
                raise RemoteError(
                    f"uploaded {path} has {size} bytes on the server, {sent} were sent"
                )

    def rename_part(self, directory: str, final_name: str) -> None:
        """Give a verified `.part` its final name; an existing final name is never replaced.

        `posix-rename@openssh.com` is atomic but overwrites, so the final name is checked
        first (final names are unique per batch, so the check-then-rename window is ours
        alone). Without the extension a plain SFTP rename fails on an existing target anyway.
        """
        source = join_remote(directory, part_name(check_name(final_name)))
        target = join_remote(directory, final_name)
        self._rename(source, target, "rename")

    def _rename(self, source: str, target: str, action: str) -> None:
        with self._mapped(action, source):
            if self._exists(target):
                raise RemoteError(
                    f"{target} already exists on {self._target.address}; refusing to overwrite it"
                )
            if self.has_posix_rename:
                self._sftp.posix_rename(source, target)
            else:
                self._sftp.rename(source, target)

    def remove(self, directory: str, name: str) -> None:
        path = join_remote(directory, name)
        with self._mapped("remove", path):
            try:
                self._sftp.remove(path)
            except OSError as error:
                if error.errno != errno.ENOENT:
                    raise

    def read_file(self, directory: str, name: str, *, max_bytes: int) -> bytes | None:
        """A small file whole, or None when there is none."""
        path = join_remote(directory, check_name(name))
        with self._mapped("read", path):
            try:
                with self._sftp.open(path, "rb") as handle:
                    data = handle.read(max_bytes + 1)
            except OSError as error:
                if error.errno == errno.ENOENT:
                    return None
                raise
        if len(data) > max_bytes:
            raise RemoteError(f"{path} is larger than {max_bytes} bytes; not ours to read")
        return bytes(data)

    def replace_file(self, directory: str, name: str, data: bytes) -> None:
        """Write `name` under a temporary dot-name, check its size, rename it over `name`.

        With `posix-rename@openssh.com` the rename replaces atomically; without it the old
        file is removed first, so for a moment there is none (the marker, the one user,
        is written again from the state when found missing).
        """
        final = join_remote(directory, check_name(name))
        temporary = join_remote(directory, temporary_name(name))
        with self._mapped("write", temporary):
            with self._sftp.open(temporary, "wb") as handle:
                handle.write(data)
            size = self._sftp.stat(temporary).st_size
            if size is not None and size != len(data):
                raise RemoteError(
                    f"uploaded {temporary} has {size} bytes on the server, {len(data)} were sent"
                )
            if self.has_posix_rename:
                self._sftp.posix_rename(temporary, final)
                return
            if self._exists(final):
                self._sftp.remove(final)
            self._sftp.rename(temporary, final)

    def download(
        self,
        directory: str,
        name: str,
        dest: Path,
        *,
        max_bytes: int,
    ) -> tuple[int, str]:
        """Stream a remote file into `dest` atomically; return (size, sha256 hex).

        The file is opened once and read sequentially without prefetch (servers that count or
        lock reads, or that choke on parallel requests, cope with that). Bytes go to a
        temporary file beside `dest`, renamed over it only when complete and within
        `max_bytes`; otherwise the temporary file is removed and `dest` is untouched.
        """
        path = join_remote(directory, name)
        temporary = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        try:
            with LocalCopy(temporary, dest.parent) as local:
                with self._mapped("download", path), self._sftp.open(path, "rb") as remote:
                    size, digest = copy_capped(remote, local, max_bytes, path)
                local.finish(dest)
        finally:
            temporary.unlink(missing_ok=True)
        return size, digest

    def move(self, directory: str, name: str, to_directory: str) -> None:
        """Move a file to another directory (an archive), creating it if missing; no overwrite."""
        source = join_remote(directory, name)
        target = join_remote(to_directory, name)
        folder = check_directory(to_directory)
        with self._mapped("create", folder):
            if folder and not self._exists(folder):
                self._sftp.mkdir(folder)
        self._rename(source, target, "move")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as error:
            # Closing a connection that already broke has nothing left to report.
            log.debug("closing SFTP session to %s: %s", self._target.address, error)
        finally:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
