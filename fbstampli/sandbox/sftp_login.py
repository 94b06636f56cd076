"""The SFTP sandbox's login, kept beside the folder it serves so that it survives a restart.

`fbstampli auth sftp` pins the host key it is shown; a sandbox that made a new key
at every start would greet the next day's `sync` with "host key changed". With
`--root DIR` the private host key and the password live in `DIR/.sandbox/`
(folder 0700, files 0600), are made on the first start and read at every later one.
A throwaway login for a stand-in: the folder is served too, and that is fine.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import paramiko

from fbstampli.errors import ConfigError
from fbstampli.sandbox.sftp_server import generate_key_text, load_key

LOGIN_FOLDER = ".sandbox"
HOST_KEY_FILE = "host_key"
PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a password


@dataclass(frozen=True, slots=True)
class SandboxLogin:
    password: str
    pkey: paramiko.PKey

    @classmethod
    def new(cls) -> SandboxLogin:
        return cls(secrets.token_urlsafe(12), load_key(generate_key_text()))


def kept_login(root: Path) -> SandboxLogin:
    """The login kept in `root/.sandbox/`, made there (0600) on the first call."""
    folder = root / LOGIN_FOLDER
    key_file, password_file = folder / HOST_KEY_FILE, folder / PASSWORD_FILE
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if not key_file.exists():
            _write_private(key_file, generate_key_text())
        if not password_file.exists():
            _write_private(password_file, secrets.token_urlsafe(12) + "\n")
        key_text = key_file.read_text(encoding="utf-8")
        password = password_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(
            f"cannot keep the sandbox login in {folder} ({error.strerror or error}); "
            "choose another --root"
        ) from None
    try:
        pkey = load_key(key_text)
    except (paramiko.SSHException, ValueError):
        raise ConfigError(
            f"{key_file} is not an ed25519 private key; remove it (the sandbox makes a new one, "
            "and the next `fbstampli auth sftp` pins it)"
        ) from None
    if not password:
        raise ConfigError(f"{password_file} is empty; remove it and the sandbox makes a new one")
    return SandboxLogin(password, pkey)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to a new file readable by its owner only; never over an existing one."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
