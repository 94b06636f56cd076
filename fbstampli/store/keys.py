"""Where the 256-bit state key comes from: environment, OS keyring, or a 0600 file.

`init` records the chosen source in `state.key-source` (not secret), so a run
never guesses. `FBSTAMPLI_DB_KEY` always wins, for containers and secret
managers. The keyring is only ever touched behind a timeout: a locked Secret
Service collection can wait forever for an unlock prompt nobody sees under cron.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from fbstampli.errors import ConfigError, StateUnusableError

T = TypeVar("T")

KEY_ENV = "FBSTAMPLI_DB_KEY"
KEYRING_SERVICE = "fbstampli"
KEYRING_TIMEOUT_SECONDS = 5.0


class KeySource(StrEnum):
    ENV = "env"
    KEYRING = "keyring"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class StateKey:
    hex: str = field(repr=False)
    source: KeySource


def new_key_hex() -> str:
    return secrets.token_hex(32)


def check_key_hex(text: str, where: str) -> str:
    text = text.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise StateUnusableError(f"the key in {where} is not 64 hexadecimal characters; restore it")
    return text


def source_marker(state_path: Path) -> Path:
    return state_path.with_name(state_path.name.replace(".db", "") + ".key-source")


def _read_private(path: Path) -> str:
    """A small file of the home, read without following a planted link."""
    from fbstampli.paths import open_home_file

    with os.fdopen(open_home_file(path, os.O_RDONLY), encoding="utf-8") as handle:
        return handle.read(4096)


def read_source(state_path: Path) -> KeySource | None:
    try:
        text = _read_private(source_marker(state_path)).strip()
    except FileNotFoundError:
        return None
    try:
        return KeySource(text)
    except ValueError:
        raise StateUnusableError(
            f"{source_marker(state_path)} names an unknown key source {text!r}; "
            "write env, keyring or file into it"
        ) from None


def write_source(state_path: Path, source: KeySource) -> None:
    from fbstampli.atomic import write_atomic

    write_atomic(source_marker(state_path), f"{source.value}\n".encode())


def _with_timeout(call: Callable[[], T], what: str) -> T:
    """Run a keyring call in a daemon thread so a hung Secret Service cannot hang us."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except Exception as error:  # noqa: BLE001 - any backend failure is reported below
            box["error"] = error

    worker = threading.Thread(target=target, name="keyring", daemon=True)
    worker.start()
    worker.join(KEYRING_TIMEOUT_SECONDS)
    if worker.is_alive():
        raise StateUnusableError(
            f"the OS keyring did not answer within {KEYRING_TIMEOUT_SECONDS:.0f} s while {what} "
            f"(a locked keyring?); unlock it, or set {KEY_ENV}"
        )
    if "error" in box:
        error = box["error"]
        raise StateUnusableError(
            f"the OS keyring failed while {what} ({type(error).__name__}); "
            f"set {KEY_ENV} or use a key file (`fbstampli init --key-source file`)"
        )
    return box.get("value")  # type: ignore[return-value]


def keyring_usable() -> bool:
    """True when a real keyring backend answers quickly; never blocks for long."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False

    def probe() -> bool:
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or backend.priority <= 0:
            return False
        keyring.get_password(KEYRING_SERVICE, "__probe__")
        return True

    try:
        return bool(_with_timeout(probe, "probing it"))
    except StateUnusableError:
        return False


def _keyring_user(state_path: Path) -> str:
    return str(state_path.resolve())


def store_in_keyring(state_path: Path, key_hex: str) -> None:
    import keyring

    _with_timeout(
        lambda: keyring.set_password(KEYRING_SERVICE, _keyring_user(state_path), key_hex),
        "storing the state key",
    )


def create_key(state_path: Path, source: KeySource, env: Mapping[str, str]) -> StateKey:
    """Make (or adopt, for `env`) the key of a new state file and record its source."""
    if source is KeySource.ENV:
        if not env.get(KEY_ENV):
            raise ConfigError(f"--key-source env needs {KEY_ENV} set to 64 hex characters")
        key = StateKey(check_key_hex(env[KEY_ENV], KEY_ENV), KeySource.ENV)
    elif source is KeySource.KEYRING:
        key = StateKey(new_key_hex(), KeySource.KEYRING)
        store_in_keyring(state_path, key.hex)
    else:
        key = StateKey(new_key_hex(), KeySource.FILE)
        key_file = state_path.with_name("state.key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.hex + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    write_source(state_path, key.source)
    return key


def resolve_key(state_path: Path, env: Mapping[str, str]) -> StateKey:
    """The key of an existing state file, from the source `init` recorded."""
    if env.get(KEY_ENV):
        return StateKey(check_key_hex(env[KEY_ENV], KEY_ENV), KeySource.ENV)
    source = read_source(state_path)
    if source is None:
        raise StateUnusableError(
            f"no record of where the key of {state_path} is kept; set {KEY_ENV}, "
            f"or write 'file' or 'keyring' into {source_marker(state_path)}"
        )
    if source is KeySource.ENV:
        raise StateUnusableError(f"the key of {state_path} comes from {KEY_ENV}, which is not set")
    if source is KeySource.KEYRING:
        import keyring

        found = _with_timeout(
            lambda: keyring.get_password(KEYRING_SERVICE, _keyring_user(state_path)),
            "reading the state key",
        )
        if not found:
            raise StateUnusableError(
                f"the OS keyring has no key for {state_path}; restore it, or set {KEY_ENV}"
            )
        return StateKey(check_key_hex(str(found), "the OS keyring"), KeySource.KEYRING)
    key_file = state_path.with_name("state.key")
    try:
        text = _read_key_file(key_file)
    except FileNotFoundError:
        raise StateUnusableError(
            f"the key file {key_file} is missing; restore it from your backup, or set {KEY_ENV}"
        ) from None
    except PermissionError:
        from fbstampli.access import access_message
        from fbstampli.errors import LocalAccessError

        raise LocalAccessError(access_message(key_file, action="read")) from None
    return StateKey(check_key_hex(text, str(key_file)), KeySource.FILE)


def _read_key_file(key_file: Path) -> str:
    """The key file's text, refused when another user could have read it (mode beyond 0600):
    a key that leaked is no key, and a quiet run would hide that it did."""
    import stat

    from fbstampli.paths import open_home_file

    with os.fdopen(open_home_file(key_file, os.O_RDONLY), encoding="utf-8") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the key file {key_file} can be read by other users (mode {mode:04o}); run "
                f"`chmod 600 {key_file}`, and rotate the key (`fbstampli key rotate`) if "
                "anyone else may have read it"
            )
        return handle.read(4096)


def _pending_file(state_path: Path) -> Path:
    return state_path.with_name("state.key.new")


def stage_new_key(state_path: Path, source: KeySource) -> StateKey:
    """Write a new key beside the current one before re-keying, so a crash loses neither."""
    key = StateKey(new_key_hex(), source)
    if source is KeySource.KEYRING:
        import keyring

        _with_timeout(
            lambda: keyring.set_password(
                KEYRING_SERVICE, _keyring_user(state_path) + ".new", key.hex
            ),
            "storing the new state key",
        )
    elif source is KeySource.FILE:
        from fbstampli.atomic import write_atomic

        write_atomic(_pending_file(state_path), f"{key.hex}\n".encode())
    else:
        home = state_path.parent
        raise ConfigError(
            f"the state key comes from {KEY_ENV}, which fbstampli cannot change; to rotate it: "
            f"stop cron and serve-webhook, write the current key to {home}/state.key "
            f"(chmod 600) and 'file' to {home}/state.key-source, unset {KEY_ENV}, run "
            f"`fbstampli key rotate`, then store the new {home}/state.key as {KEY_ENV}, "
            f"write 'env' to {home}/state.key-source and delete {home}/state.key"
        )
    return key


def pending_key(state_path: Path, source: KeySource) -> StateKey | None:
    """The staged key of an interrupted rotation, if there is one."""
    if source is KeySource.FILE:
        try:
            text = _read_key_file(_pending_file(state_path))
        except FileNotFoundError:
            return None
        return StateKey(check_key_hex(text, str(_pending_file(state_path))), source)
    if source is KeySource.KEYRING:
        import keyring

        found = _with_timeout(
            lambda: keyring.get_password(KEYRING_SERVICE, _keyring_user(state_path) + ".new"),
            "reading the new state key",
        )
        return StateKey(check_key_hex(str(found), "the OS keyring"), source) if found else None
    return None


def promote_key(state_path: Path, key: StateKey) -> None:
    """Make the staged key the key; the old one is gone afterwards."""
    if key.source is KeySource.FILE:
        os.replace(_pending_file(state_path), state_path.with_name("state.key"))
        directory = os.open(state_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    elif key.source is KeySource.KEYRING:
        import keyring

        user = _keyring_user(state_path)
        _with_timeout(
            lambda: keyring.set_password(KEYRING_SERVICE, user, key.hex), "storing the key"
        )
        _with_timeout(lambda: keyring.delete_password(KEYRING_SERVICE, user + ".new"), "tidying up")


def discard_pending_key(state_path: Path, source: KeySource) -> None:
    if source is KeySource.FILE:
        _pending_file(state_path).unlink(missing_ok=True)
    elif source is KeySource.KEYRING:
        import keyring

        user = _keyring_user(state_path) + ".new"
        _with_timeout(lambda: keyring.delete_password(KEYRING_SERVICE, user), "tidying up")
