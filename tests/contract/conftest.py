"""Servers the transport contract runs against: the in-process sandbox (with and without
posix-rename), a real OpenSSH sshd on 127.0.0.1 (session-scoped, marked `sshd`), and the
engine tests' `MemoryTransport`, so the fake is held to what the real servers do. Tests of
what only a network server has (host keys, logins, symlinks) take `sftp_only`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko
import pytest

from fbstampli.errors import RemoteUnavailableError
from fbstampli.sandbox.sftp_server import SftpServer
from fbstampli.sftp import SftpTarget, SftpTransport
from tests import sshd as sshd_helper
from tests.support.fakes import MemoryTransport


@dataclass
class UploadGate:
    """Stops an upload partway: `reached` once it is stopped, `release()` to let it go on."""

    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Remote:
    """One server under contract: how to reach it and the local folder behind its login dir."""

    name: str
    target: SftpTarget
    root: Path
    posix_rename: bool
    server: SftpServer | None = None
    prepare_path: Callable[[Path], None] = lambda path: None
    authorize: Callable[[paramiko.PKey], None] = lambda key: None

    def connect(self, **changes: Any) -> SftpTransport:
        return SftpTransport.connect(replace(self.target, **changes), timeout=10)

    def make_dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        self.prepare_path(path)
        return path

    def put(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.write_bytes(data)
        self.prepare_path(path)
        return path

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    @contextmanager
    def gate_uploads(
        self, monkeypatch: pytest.MonkeyPatch, *, drop: bool = False
    ) -> Iterator[UploadGate]:
        """Stop the next upload after its first block (or drop the connection there).

        The sandbox does it server-side with its own hooks; for sshd the client's file
        write is gated instead, which looks the same from the server's side.
        """
        gate = UploadGate()
        if self.server is not None:
            if drop:
                self.server.faults.drop_after_bytes = self.server.bytes_received + 32 * 1024
                gate.reached.set()
                try:
                    yield gate
                finally:
                    self.server.faults.drop_after_bytes = None
                return
            with self.server.hold("*.part") as hold:
                gate.reached, gate.released = hold.reached, hold.released
                yield gate
            return
        original = paramiko.SFTPFile.write
        calls = {"count": 0}

        def gated_write(handle: paramiko.SFTPFile, data: Any) -> None:
            calls["count"] += 1
            if calls["count"] == 2:
                if drop:
                    handle.sftp.sock.get_transport().sock.shutdown(socket.SHUT_RDWR)
                else:
                    gate.reached.set()
                    gate.released.wait(60)
            original(handle, data)

        monkeypatch.setattr(paramiko.SFTPFile, "write", gated_write)
        if drop:
            gate.reached.set()
        try:
            yield gate
        finally:
            gate.release()


@dataclass
class MemoryRemote:
    """`MemoryTransport` under the same contract: its folders stand in for the server's disk."""

    name: str = "memory"
    posix_rename: bool = True
    server: MemoryTransport = field(default_factory=MemoryTransport)

    def connect(self) -> MemoryTransport:
        return self.server.connection()

    def make_dir(self, name: str) -> None:
        self.server.folder(name)

    def put(self, relative: str, data: bytes) -> None:
        directory, name = relative.rsplit("/", 1)
        self.server.folder(directory)[name] = data

    def read(self, relative: str) -> bytes:
        directory, name = relative.rsplit("/", 1)
        return self.server.folder(directory)[name]

    @contextmanager
    def gate_uploads(
        self, monkeypatch: pytest.MonkeyPatch, *, drop: bool = False
    ) -> Iterator[UploadGate]:
        """Stop the next upload after its first block, or drop its connection there."""
        gate = UploadGate()

        def after_block(connection: MemoryTransport) -> None:
            del self.server.hooks["block"]
            if drop:
                connection.closed = True
                raise RemoteUnavailableError("memory transport: connection lost mid-upload")
            gate.reached.set()
            gate.released.wait(60)

        self.server.hooks["block"] = after_block
        if drop:
            gate.reached.set()
        try:
            yield gate
        finally:
            self.server.hooks.pop("block", None)
            gate.release()


@pytest.fixture(scope="session")
def sshd() -> Iterator[sshd_helper.Sshd]:
    """OpenSSH sshd on 127.0.0.1; fails (never skips) with the reason when it cannot run."""
    try:
        server = sshd_helper.start_sshd()
    except sshd_helper.SshdUnavailableError as error:
        pytest.fail(f"cannot start sshd for the contract tests: {error}", pytrace=False)
    try:
        yield server
    finally:
        sshd_helper.stop_sshd(server)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[SftpServer]:
    with SftpServer(tmp_path / "sftp-root") as server:
        yield server


def _sandbox(tmp_path: Path, posix_rename: bool) -> Iterator[Remote]:
    with SftpServer(tmp_path / "sftp-root", posix_rename=posix_rename) as server:

        def authorize(key: paramiko.PKey) -> None:
            server.authorized_keys = (key,)

        yield Remote(
            name="sandbox" if posix_rename else "sandbox-plain-rename",
            target=server.target(),
            root=server.root,
            posix_rename=posix_rename,
            server=server,
            authorize=authorize,
        )


SFTP_SERVERS = [
    "sandbox",
    "sandbox-plain-rename",
    pytest.param("sshd", marks=[pytest.mark.sshd, pytest.mark.xdist_group("sshd")]),
]
# For a test of what only a network server has: runs it on the SFTP servers, not the fake.
sftp_only = pytest.mark.parametrize("remote", SFTP_SERVERS, indirect=True)


@pytest.fixture(params=[*SFTP_SERVERS, "memory"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote | MemoryRemote]:
    if request.param == "memory":
        yield MemoryRemote()
        return
    if request.param == "sshd":
        server: sshd_helper.Sshd = request.getfixturevalue("sshd")
        sshd_helper.reset_root(server)
        yield Remote(
            name="sshd",
            target=SftpTarget(
                server.host, server.port, server.username, server.host_key, password=server.password
            ),
            root=server.root,
            posix_rename=True,
            prepare_path=sshd_helper.chown_to_user,
            authorize=lambda key: server.authorized_keys.write_text(
                f"{key.get_name()} {key.get_base64()}\n"
            ),
        )
        sshd_helper.reset_root(server)
        return
    yield from _sandbox(tmp_path, posix_rename=request.param == "sandbox")
