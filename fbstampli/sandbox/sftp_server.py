"""An in-process SFTP server over a local folder, for `fbstampli demo`, tests and benchmarks.

Built on paramiko's server classes; every client path is confined to the root folder. It can
leave out `posix-rename@openssh.com` (to exercise the plain-rename fallback) and carries fault
hooks for tests — held writes, dropped connections, a full disk, refused writes, slow writes,
no sizes in `stat`, and the first four at a seeded rate — which never exist in product code.
"""

from __future__ import annotations

import errno
import fnmatch
import io
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paramiko
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)
from paramiko.sftp import CMD_INIT, CMD_VERSION, SFTP_FAILURE, SFTP_OK, SFTP_OP_UNSUPPORTED

from fbstampli.sandbox.rates import Dice
from fbstampli.sftp import POSIX_RENAME, HostKey, SftpTarget

log = logging.getLogger(__name__)

_HOLD_TIMEOUT = 60.0  # a forgotten hold must not hang a test run forever


_KEY_CLASSES: dict[str, type[paramiko.PKey]] = {
    "ed25519": paramiko.Ed25519Key,
    "ecdsa": paramiko.ECDSAKey,
    "rsa": paramiko.RSAKey,
}


def generate_key_text(key_type: str = "ed25519", passphrase: str | None = None) -> str:
    """A fresh private key (`ed25519`, `ecdsa` or `rsa`) as OpenSSH text, as users store them."""
    private: Any
    if key_type == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "ecdsa":
        private = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    encryption = BestAvailableEncryption(passphrase.encode()) if passphrase else NoEncryption()
    return str(private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, encryption).decode())


def load_key(text: str, key_type: str = "ed25519", passphrase: str | None = None) -> paramiko.PKey:
    return _KEY_CLASSES[key_type].from_private_key(io.StringIO(text), password=passphrase)


def generate_key(key_type: str = "ed25519") -> paramiko.PKey:
    """A fresh private key of type `ed25519`, `ecdsa` or `rsa` (host keys, client keys)."""
    return load_key(generate_key_text(key_type), key_type)


@dataclass(slots=True)
class Hold:
    """Writes to files matching `pattern` stop until `release()`; `reached` is set when one does."""

    pattern: str
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


RATE_ACTIONS = ("disconnect", "deny", "disk_full", "slow")
# Where each action can strike: permission is refused when a file is opened for writing; a
# full disk, a slow disk and a cut connection strike a write; a cut connection a read too.
_RATE_ACTIONS_BY_STEP = {
    "open_write": ("deny",),
    "write": ("disconnect", "disk_full", "slow"),
    "read": ("disconnect",),
}


@dataclass(slots=True)
class FaultRate:
    """Each open-for-write, write and read request fails with probability `rate`.

    The draws are `Dice`'s: seeded, and the next, in turn, of those of `actions` that fit
    the step (see `_RATE_ACTIONS_BY_STEP`). "disconnect" stores half of the chunk and
    closes the connection (a cut mid-transfer); "deny" answers permission denied;
    "disk_full" answers SSH_FX_FAILURE as OpenSSH does on ENOSPC; "slow" sleeps
    `slow_seconds` and then writes. `injected` counts what was handed out, per action;
    `limit` caps the total (`rate=1.0, limit=1`: exactly the next fitting step fails).
    """

    rate: float
    seed: int = 0
    actions: tuple[str, ...] = RATE_ACTIONS
    slow_seconds: float = 0.05
    limit: int | None = None
    _dice: Dice = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._dice = Dice(self.rate, self.seed, RATE_ACTIONS, self.actions, self.limit)

    def draw(self, step: str) -> str | None:
        """The action this `step` ("open_write", "write", "read") suffers, or None."""
        return self._dice.roll(_RATE_ACTIONS_BY_STEP[step])

    @property
    def injected(self) -> Counter[str]:
        return self._dice.injected

    @property
    def total(self) -> int:
        return self._dice.total


@dataclass(slots=True)
class Faults:
    """Test hooks, read by the server threads on every request; set them from the test."""

    drop_after_bytes: int | None = None  # close the connection once this many bytes arrived
    drop_reads: int = 0  # cut the connection at each of the next this many read requests
    login_delay: float = 0.0  # seconds each password or key check takes: a stalled server
    disk_full: bool = False  # every write answers SSH_FX_FAILURE, as OpenSSH does on ENOSPC
    deny_writes: bool = False  # opening for write answers SSH_FX_PERMISSION_DENIED
    write_delay: float = 0.0  # seconds to sleep in each write request
    report_sizes: bool = True  # False: stat/list answers carry no size
    holds: list[Hold] = field(default_factory=list)
    rate: FaultRate | None = None  # background faults at a rate, on top of the ones above
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cut_this_read(self) -> bool:
        """Whether this read request is one of the `drop_reads` to cut; thread-safe."""
        with self._lock:
            if self.drop_reads <= 0:
                return False
            self.drop_reads -= 1
            return True


class _Auth(paramiko.ServerInterface):
    def __init__(self, server: SftpServer) -> None:
        self.server = server
        self.transport: paramiko.Transport | None = None

    def get_allowed_auths(self, username: str) -> str:
        return "password,publickey"

    def check_auth_password(self, username: str, password: str) -> int:
        time.sleep(self.server.faults.login_delay)
        if username == self.server.username and password == self.server.password:
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if username == self.server.username and any(
            key.asbytes() == allowed.asbytes() for allowed in self.server.authorized_keys
        ):
            return AUTH_SUCCESSFUL
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _SFTPSubsystem(paramiko.SFTPServer):
    """paramiko's SFTP server, announcing `posix-rename@openssh.com` when the server offers it."""

    def _send_server_version(self) -> int:
        packet_type, data = self._read_packet()  # type: ignore[attr-defined]  # untyped internal
        if packet_type != CMD_INIT:
            raise paramiko.SSHException("Incompatible sftp protocol")
        version = int.from_bytes(data[:4], "big")
        extensions = ["check-file", "md5,sha1"]
        sftp_server = self.server
        if isinstance(sftp_server, _RootedSFTP) and sftp_server.root_server.posix_rename:
            extensions += [POSIX_RENAME, "1"]
        message = paramiko.Message()
        message.add_int(3)
        message.add(*extensions)
        self._send_packet(CMD_VERSION, message)  # type: ignore[attr-defined]
        return version


class _Handle(paramiko.SFTPHandle):
    def __init__(
        self, sftp: _RootedSFTP, path: Path, handle: io.BufferedRandom, flags: int
    ) -> None:
        super().__init__(flags)
        self.sftp = sftp
        self.path = path
        self.file = handle
        self.lock = threading.Lock()

    def close(self) -> None:
        with suppress(OSError):
            self.file.close()

    def read(self, offset: int, length: int) -> bytes | int:
        faults = self.sftp.root_server.faults
        rate = faults.rate
        if faults.cut_this_read() or (rate is not None and rate.draw("read") == "disconnect"):
            self.sftp.drop_connection()
            return SFTP_FAILURE
        with self.lock:
            self.file.seek(offset)
            return self.file.read(length)

    def write(self, offset: int, data: Any) -> int:
        root_server = self.sftp.root_server
        faults = root_server.faults
        for hold in list(faults.holds):
            if fnmatch.fnmatchcase(self.path.name, hold.pattern):
                hold.reached.set()
                hold.released.wait(_HOLD_TIMEOUT)
        if faults.write_delay:
            time.sleep(faults.write_delay)
        if faults.disk_full:
            return SFTP_FAILURE
        chunk = bytes(data)
        rate = faults.rate
        drawn = rate.draw("write") if rate is not None else None
        if drawn == "slow" and rate is not None:
            time.sleep(rate.slow_seconds)
        elif drawn == "disk_full":
            return SFTP_FAILURE
        elif drawn == "disconnect":
            with self.lock:
                self.file.seek(offset)
                self.file.write(chunk[: len(chunk) // 2])
                self.file.flush()
            self.sftp.drop_connection()
            return SFTP_FAILURE
        if faults.drop_after_bytes is not None:
            allowed = faults.drop_after_bytes - root_server.bytes_received
            root_server.bytes_received += len(chunk)
            if allowed < len(chunk):
                with self.lock:
                    self.file.seek(offset)
                    self.file.write(chunk[: max(allowed, 0)])
                    self.file.flush()
                self.sftp.drop_connection()
                return SFTP_FAILURE
        else:
            root_server.bytes_received += len(chunk)
        with self.lock:
            self.file.seek(offset)
            self.file.write(chunk)
            self.file.flush()
        return SFTP_OK

    def stat(self) -> paramiko.SFTPAttributes | int:
        return self.sftp.attributes(os.fstat(self.file.fileno()), self.path.name)


class _RootedSFTP(paramiko.SFTPServerInterface):
    """File operations on the server's root folder; no client path can leave it."""

    def __init__(self, server: _Auth, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        self.auth = server
        self.root_server = server.server

    def drop_connection(self) -> None:
        if self.auth.transport is not None:
            self.auth.transport.close()

    def real(self, path: str) -> Path:
        virtual = posixpath.normpath("/" + path)
        root = self.root_server.root
        candidate = root.joinpath(virtual.lstrip("/"))
        resolved = Path(os.path.realpath(candidate))
        if resolved != root and root not in resolved.parents:
            raise PermissionError(errno.EACCES, "outside the root", path)
        return candidate

    def attributes(self, result: os.stat_result, name: str) -> paramiko.SFTPAttributes:
        attributes = paramiko.SFTPAttributes.from_stat(result, name)
        if not self.root_server.faults.report_sizes:
            attributes.st_size = None
        return attributes

    def canonicalize(self, path: str) -> str:
        return posixpath.normpath("/" + path)

    def open(
        self, path: str, flags: int, attr: paramiko.SFTPAttributes
    ) -> paramiko.SFTPHandle | int:
        try:
            real = self.real(path)
            writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
            if writing and self.root_server.faults.deny_writes:
                raise PermissionError(errno.EACCES, "writes refused", path)
            rate = self.root_server.faults.rate
            if writing and rate is not None and rate.draw("open_write") == "deny":
                raise PermissionError(errno.EACCES, "writes refused", path)
            mode = (flags & ~os.O_ACCMODE) | os.O_RDWR if writing else flags
            descriptor = os.open(real, mode, 0o644)
            handle = os.fdopen(descriptor, "r+b" if writing else "rb")
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        return _Handle(self, real, handle, flags)  # type: ignore[arg-type]

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        try:
            real = self.real(path)
            return [
                self.attributes(os.lstat(real / name), name) for name in sorted(os.listdir(real))
            ]
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            real = self.real(path)
            return self.attributes(os.stat(real), real.name)
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            real = self.real(path)
            return self.attributes(os.lstat(real), real.name)
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)

    def remove(self, path: str) -> int:
        try:
            os.remove(self.real(path))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        return SFTP_OK

    def rename(self, oldpath: str, newpath: str) -> int:
        """SSH_FXP_RENAME as OpenSSH does it: link then unlink, so an existing target fails."""
        try:
            old, new = self.real(oldpath), self.real(newpath)
            if old.is_dir():
                if os.path.lexists(new):
                    return SFTP_FAILURE
                os.rename(old, new)
            else:
                os.link(old, new)
                os.unlink(old)
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        self._hold_after_rename(new.name)
        return SFTP_OK

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        if not self.root_server.posix_rename:
            return SFTP_OP_UNSUPPORTED
        try:
            os.replace(self.real(oldpath), self.real(newpath))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        self._hold_after_rename(self.real(newpath).name)
        return SFTP_OK

    def _hold_after_rename(self, new_name: str) -> None:
        """`hold("renamed:<glob>")`: the rename is done, its reply is not sent yet."""
        for hold in list(self.root_server.faults.holds):
            pattern = hold.pattern.removeprefix("renamed:")
            if hold.pattern.startswith("renamed:") and fnmatch.fnmatchcase(new_name, pattern):
                hold.reached.set()
                hold.released.wait(_HOLD_TIMEOUT)

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        try:
            os.mkdir(self.real(path))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        return SFTP_OK

    def rmdir(self, path: str) -> int:
        try:
            os.rmdir(self.real(path))
        except OSError as error:
            return paramiko.SFTPServer.convert_errno(error.errno or 0)
        return SFTP_OK


class SftpServer:
    """An SFTP server on 127.0.0.1 and a free port, serving `root`; a context manager.

    Password (random unless given) and public-key logins for one user. `faults` and `hold()`
    are the test hooks.
    """

    def __init__(
        self,
        root: Path,
        *,
        username: str = "stampli",
        password: str | None = None,
        authorized_keys: Sequence[paramiko.PKey] = (),
        posix_rename: bool = True,
        host_key_type: str = "ed25519",
        port: int = 0,
        host_pkey: paramiko.PKey | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.authorized_keys = tuple(authorized_keys)
        self.posix_rename = posix_rename
        self.host = "127.0.0.1"
        self.port = port  # 0: any free port; a restarted server passes its old one
        self.faults = Faults()
        self.bytes_received = 0
        self._host_pkey = host_pkey or generate_key(host_key_type)
        self.host_key = HostKey.from_pkey(self._host_pkey)
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._accepter: threading.Thread | None = None
        self._transports: list[paramiko.Transport] = []
        self._lock = threading.Lock()

    @property
    def host_pkey(self) -> paramiko.PKey:
        """The private host key, so a restarted server can present the same pinned key."""
        return self._host_pkey

    def target(self, **changes: Any) -> SftpTarget:
        """An `SftpTarget` for this server with the right pin and password; override any field."""
        target = SftpTarget(
            host=self.host,
            port=self.port,
            username=self.username,
            host_key=self.host_key,
            password=self.password,
        )
        return replace(target, **changes)

    def fail_at_rate(self, rate: float, *, seed: int = 0, **options: Any) -> FaultRate:
        """From now on, fail opens, writes and reads at `rate` (see `FaultRate`)."""
        self.faults.rate = FaultRate(rate, seed, **options)
        return self.faults.rate

    @contextmanager
    def hold(self, pattern: str) -> Iterator[Hold]:
        """Freeze writes to files whose name matches `pattern` until released or the block ends."""
        hold = Hold(pattern)
        self.faults.holds.append(hold)
        try:
            yield hold
        finally:
            hold.release()
            self.faults.holds.remove(hold)

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"sftp-sandbox-{self.port}", daemon=True
        )
        self._accepter.start()
        return self

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            try:
                self._serve(connection)
            except (paramiko.SSHException, OSError, EOFError) as error:
                log.info("sandbox SFTP connection failed to start: %s", error)
                connection.close()

    def _serve(self, connection: socket.socket) -> None:
        # SFTP is request/response: with Nagle on, each reply's last segment waits for
        # the client's delayed ACK (~40 ms a request, under 1 MB/s for a download).
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(connection)
        # Its own log channel, so a client hanging up is logged as the sandbox's business, and
        # not news to whoever runs it: in a process that also runs the command line (the demo,
        # the tests) it would otherwise reach that command's stderr as an error of its own.
        transport.set_log_channel(f"{__name__}.transport")
        logging.getLogger(f"{__name__}.transport").setLevel(logging.CRITICAL)
        transport.add_server_key(self._host_pkey)
        auth = _Auth(self)
        auth.transport = transport
        transport.set_subsystem_handler("sftp", _SFTPSubsystem, _RootedSFTP)
        with self._lock:
            self._transports.append(transport)
        transport.start_server(server=auth)

    def stop(self) -> None:
        self._stopping.set()
        if self._accepter is not None:
            self._accepter.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for hold in list(self.faults.holds):
            hold.release()
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()
        for transport in transports:
            transport.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
