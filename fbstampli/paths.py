"""Where fbstampli keeps its files: one home folder per FreshBooks→Stampli connection.

The home holds config.toml, the encrypted state.db, state.key (only when the
key lives in a file), logs/, the run lock and local copies of Stampli exports.
It is created with mode 0700, so nothing in it is readable by other users.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fbstampli.errors import ConfigError

HOME_ENV = "FBSTAMPLI_HOME"
ALLOW_FOREIGN_HOME_ENV = "FBSTAMPLI_ALLOW_FOREIGN_HOME"


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
    def documents(self) -> Path:
        """Bills' documents downloaded from FreshBooks, each kept until it is delivered."""
        return self.home / "documents"

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
            self.home.mkdir(parents=True, exist_ok=True)
            os.chmod(self.home, 0o700)
            private_folder(self.home, self.logs.name, tighten=True)  # never through a link
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


# ---- the home is ours, or we do not use it ------------------------------------------------------


def _name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def owner_name(uid: int) -> str:
    """The user name of `uid` (its number when it has none), for messages."""
    return _name(uid)


def _user(uid: int) -> str:
    return f"user {_name(uid)!r}"


def _refuse_entry(path: Path, status: os.stat_result, owners: set[int], owner: int) -> None:
    if stat.S_ISLNK(status.st_mode):
        raise ConfigError(
            f"{path} is a symbolic link, which fbstampli never makes in its home: "
            f"remove it (`rm {path}`) and find out who planted it"
        )
    if status.st_uid not in owners:  # e.g. left by a run as root: what it holds is ours
        raise ConfigError(
            f"{path} belongs to {_user(status.st_uid)}, not to {_user(owner)} who owns the "
            f"home; give it back, as root: `chown {_name(owner)} {path}`"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{path} can be changed by other users (mode {stat.S_IMODE(status.st_mode):04o}); "
            f"run `chmod go-w {path}`"
        )


def check_home(paths: Paths, *, allow_foreign: bool = False) -> None:
    """Refuse a home another user could turn against whoever runs fbstampli here.

    A home (or one of its own files) that is a symbolic link, belongs to
    someone else, or is writable by group or others lets that someone make
    this run write through a planted link, or read what they wrote. Root
    running a service user's home is the case that matters: refused unless
    `--allow-foreign-home` says it is meant (then the home's owner is trusted,
    and the files are still opened without following links). A home that does
    not exist yet is `init`'s business.
    """
    try:
        status = os.lstat(paths.home)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigError(
            f"cannot use {paths.home} as the fbstampli home ({error.strerror}); "
            "choose another --home or FBSTAMPLI_HOME"
        ) from None
    me = os.geteuid()
    if stat.S_ISLNK(status.st_mode):
        raise ConfigError(
            f"the fbstampli home {paths.home} is a symbolic link; "
            "give the folder it points to as --home (or FBSTAMPLI_HOME)"
        )
    if not stat.S_ISDIR(status.st_mode):
        return  # not a home at all: creating or opening it says so in its own words
    if status.st_uid != me and not allow_foreign:
        raise ConfigError(
            f"the fbstampli home {paths.home} belongs to {_user(status.st_uid)}, not to "
            f"{_user(me)}: run fbstampli as that user, or add --allow-foreign-home "
            "if you mean to use it as this one"
        )
    owners = {me, status.st_uid}
    _refuse_entry(paths.home, status, owners, status.st_uid)
    state = str(paths.state)
    for path in (
        paths.config,
        paths.key_file,
        paths.key_file.with_name("state.key.new"),
        paths.home / "state.key-source",
        paths.lock,
        paths.listener_lock,
        paths.state,
        Path(f"{state}-wal"),
        Path(f"{state}-shm"),
        paths.logs,
        paths.log_file,
        paths.stampli_files,
        paths.quarantine,
        paths.dry_run,
    ):
        try:
            entry = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):  # `stampli` a file: pull says so
            continue
        except OSError as error:
            raise ConfigError(f"cannot look at {path} ({error.strerror})") from None
        _refuse_entry(path, entry, owners, status.st_uid)


def open_home_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """`os.open` for the home's own files: never through a link, only a plain file.

    `check_home` looked before the run; this holds at the moment of opening,
    so a link planted in between is refused too (`O_NOFOLLOW`), and so is a
    hard link to someone else's file or a pipe. Returns the descriptor.
    """
    folder = open_folder(path.parent)  # its folder (`logs/`) is never a link either
    try:
        fd = os.open(
            path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=folder
        )
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link, which fbstampli never makes in its home: "
                f"remove it (`rm {path}`) and find out who planted it"
            ) from None
        error.filename = str(path)  # opened by its name in the folder: say the whole path
        raise
    finally:
        os.close(folder)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:
        os.close(fd)
        raise ConfigError(
            f"{path} is not a plain file of its own (a hard link, a pipe or a device): "
            f"remove it (`rm {path}`) and find out who put it there"
        )
    os.set_blocking(fd, True)
    return fd


_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _link_refused(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} is a symbolic link, which fbstampli never makes in its home: "
        f"remove it (`rm {path}`) and find out who planted it"
    )


def _is_link(error: OSError, name: str, folder: int | Path | None) -> bool:
    """Whether an `O_NOFOLLOW|O_DIRECTORY` open failed on a link (Linux says ENOTDIR)."""
    if error.errno == errno.ELOOP:
        return True
    if error.errno != errno.ENOTDIR:
        return False
    try:
        if isinstance(folder, int):
            status = os.lstat(name, dir_fd=folder)
        else:
            status = os.lstat(Path(folder, name) if folder is not None else name)
    except OSError:
        return False
    return stat.S_ISLNK(status.st_mode)


def open_folder(path: Path) -> int:
    """A descriptor of the folder `path` itself, refused when its last component is a link."""
    try:
        return os.open(path, _FOLDER_FLAGS)
    except OSError as error:
        if _is_link(error, path.name, None if path.parent == path else path.parent):
            raise _link_refused(path) from None
        raise


def private_folder(home: Path, *names: str, tighten: bool = False) -> Path:
    """`home/names...`, each folder opened beneath the one before it with
    `O_NOFOLLOW|O_DIRECTORY` (made 0700 when missing), so that a link planted as
    `stampli/`, `quarantine/`, `dry-run/` or `logs/` is refused, even in a home
    run with `--allow-foreign-home` whose owner could plant one. `tighten` sets each
    to 0700 through its descriptor instead of refusing one others could write.
    Returns the path.
    """
    current = open_folder(home)
    path = home
    try:
        for name in names:
            path = path / name
            try:
                os.mkdir(name, 0o700, dir_fd=current)
            except FileExistsError:
                pass
            except OSError as error:
                raise ConfigError(
                    f"cannot create {path} ({error.strerror}); check that folder"
                ) from None
            try:
                inner = os.open(name, _FOLDER_FLAGS, dir_fd=current)
            except OSError as error:
                if _is_link(error, name, current):
                    raise _link_refused(path) from None
                error.filename = str(path)  # a file where the folder should be: the caller says
                raise
            os.close(current)
            current = inner
            if tighten:
                os.fchmod(current, 0o700)
            status = os.fstat(current)
            if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise ConfigError(
                    f"{path} can be changed by other users (mode "
                    f"{stat.S_IMODE(status.st_mode):04o}); run `chmod go-w {path}`"
                )
    finally:
        os.close(current)
    return path
