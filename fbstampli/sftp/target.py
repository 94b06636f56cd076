"""Where and as whom to connect, the pinned host key, and which remote names are safe."""

from __future__ import annotations

import base64
import hashlib
import posixpath
from dataclasses import dataclass, field

import paramiko

from fbstampli.errors import RemoteError


@dataclass(frozen=True, slots=True)
class HostKey:
    """A server's public host key as pinned in the state store: `ssh-ed25519 AAAA...`."""

    key_type: str
    base64: str

    @property
    def sha256_fingerprint(self) -> str:
        """`SHA256:...` exactly as `ssh-keygen -lf` and OpenSSH's prompts print it."""
        digest = hashlib.sha256(base64.b64decode(self.base64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    @classmethod
    def from_pkey(cls, key: paramiko.PKey) -> HostKey:
        return cls(key.get_name(), key.get_base64())

    def to_pkey(self) -> paramiko.PKey:
        return paramiko.PKey.from_type_string(self.key_type, base64.b64decode(self.base64))


@dataclass(frozen=True, slots=True)
class SftpTarget:
    """Where and as whom to connect; secrets are kept out of `repr`."""

    host: str
    port: int
    username: str
    host_key: HostKey
    password: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)  # OpenSSH or PEM private key text
    passphrase: str = field(default="", repr=False)
    inbound_dir: str = "inbound"
    outbound_dir: str = "outbound"

    @property
    def address(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"

    @property
    def host_key_name(self) -> str:
        """The known_hosts name OpenSSH and paramiko use: `[host]:port`, or `host` on port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def check_name(name: str) -> str:
    """A remote file name must be one plain path component: no traversal, no separators."""
    if (
        not name
        or name in (".", "..")
        or any(ch in name for ch in "/\\\x00")
        or any(ord(ch) < 0x20 for ch in name)
    ):
        raise RemoteError(f"refusing unsafe remote file name {name!r}")
    return name


def check_directory(directory: str) -> str:
    """A configured remote directory: relative or absolute, but never climbing with `..`."""
    if "\x00" in directory or "\\" in directory or ".." in directory.split("/"):
        raise RemoteError(f"refusing unsafe remote directory {directory!r}")
    return directory.rstrip("/") or ("/" if directory.startswith("/") else "")


def join_remote(directory: str, name: str) -> str:
    folder = check_directory(directory)
    return posixpath.join(folder, check_name(name)) if folder not in ("", ".") else check_name(name)
