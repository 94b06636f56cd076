"""Where fbstampli keeps its files: one home folder per FreshBooks→Stampli connection.

The home holds config.toml, the encrypted state.db, state.key (only when the
key lives in a file), logs/, the run lock and local copies of Stampli exports.
It is created with mode 0700, so nothing in it is readable by other users.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fbstampli.errors import ConfigError

HOME_ENV = "FBSTAMPLI_HOME"


@dataclass(frozen=True, slots=True)
class Paths:
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "config.toml"

    @property
    def state(self) -> Path:
        return self.home / "state.db"

    @property
    def key_file(self) -> Path:
        return self.home / "state.key"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "fbstampli.log"

    @property
    def lock(self) -> Path:
        return self.home / "run.lock"

    @property
    def listener_lock(self) -> Path:
        """Held while serve-webhook runs; see `lock.listener_lock`."""
        return self.home / "listener.lock"

    @property
    def stampli_files(self) -> Path:
        """Local copies of every Stampli export we downloaded, kept for the audit trail."""
        return self.home / "stampli"

    @property
    def quarantine(self) -> Path:
        return self.home / "stampli" / "quarantine"

    @property
    def dry_run(self) -> Path:
        """Where `push-bills --dry-run` writes the files it would have uploaded."""
        return self.home / "dry-run"

    def own_files(self) -> set[Path]:
        """Files a report or backup must never be written over, resolved."""
        state = self.state.resolve()
        named = (self.config, self.key_file, self.lock, self.log_file)
        return {state, Path(f"{state}-wal"), Path(f"{state}-shm"), *(p.resolve() for p in named)}

    def ensure(self) -> None:
        """Create the home and its private sub-folders, tightening modes on old ones."""
        try:
            for folder in (self.home, self.logs):
                folder.mkdir(parents=True, exist_ok=True)
                os.chmod(folder, 0o700)
        except OSError as error:
            raise ConfigError(
                f"cannot create the fbstampli home {self.home} ({error.strerror}); "
                "choose another --home or FBSTAMPLI_HOME"
            ) from None

    def existing_log_file(self) -> Path | None:
        """The log file when the home has a logs folder; a home that cannot be looked at is
        a usage error here, before any command has started."""
        try:
            return self.log_file if self.logs.is_dir() else None
        except OSError as error:
            raise ConfigError(
                f"cannot use {self.home} as the fbstampli home ({error.strerror}); "
                "choose another --home or FBSTAMPLI_HOME"
            ) from None


def file_place_problem(path: Path, home: Paths | None = None) -> str | None:
    """Why a file cannot be written at `path`, checked before the work that produces it.

    The file is written beside and renamed over: whatever sits at `path` is
    replaced, so only a plain file may be there, never a link, a device or a
    pipe (as root, `/dev/null` would become a file), nor one of the home's own.
    """
    try:
        if path.is_dir():
            return "it is a folder"
        if not path.parent.is_dir():
            return f"the folder {path.parent} does not exist"
        if path.is_symlink() or (path.exists() and not path.is_file()):
            return "something other than a plain file is there (a link, a device or a pipe)"
        if home is not None and path.resolve() in home.own_files():
            return "it is one of fbstampli's own files in its home"
    except OSError as error:  # a name too long, a folder we may not look into
        return str(error.strerror)
    return None


def out_of_room(error: OSError) -> bool:
    """A full disk, a quota or a file-size limit: worth trying again later, unlike a bad path."""
    return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def expanded(path: Path, named: str) -> Path:
    """`path` with a leading `~` or `~user` expanded; an unknown user is a usage error."""
    try:
        return path.expanduser()
    except RuntimeError:
        raise ConfigError(f"{named} {path}: there is no such user's home to expand") from None


def default_home(env: Mapping[str, str]) -> Path:
    if env.get(HOME_ENV):
        return expanded(Path(env[HOME_ENV]), HOME_ENV)
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fbstampli"
