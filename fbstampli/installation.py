"""Several FreshBooks businesses, one installation: which homes it serves, by name.

An installation is a folder (by default the home folder itself) holding a
small, non-secret `installation.toml` that lists its businesses by name, each
with the path of its home. Every business home is a normal fbstampli home:
its own config, encrypted state, key, Stampli target, template, lock and log,
so one business's trouble never reaches another's files. New homes live in
`<installation>/businesses/<name>/`; an existing home is adopted by recording
its absolute path (no symlink, no move, no migration).

The list is a file rather than a scan of `businesses/` so that a half-made or
removed folder is never mistaken for a business, and an adopted home outside
the folder is found at all. The name appears in URLs
(`/webhooks/freshbooks/<name>`) and folder names, hence its narrow alphabet.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from fbstampli.atomic import write_atomic
from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.paths import Paths, check_home, owner_name

INSTALLATION_ENV = "FBSTAMPLI_INSTALLATION"
INSTALLATION_FILE = "installation.toml"
BUSINESSES_FOLDER = "businesses"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
NAME_RULE = "1 to 40 lower-case letters, digits and dashes, starting with a letter or digit"


@dataclass(frozen=True, slots=True)
class BusinessHome:
    """One business of an installation: its name and the home that serves it."""

    name: str
    home: Path
    adopted: bool  # the home lives outside <installation>/businesses/


def check_name(name: str) -> str:
    """`name` when it can be a folder and a URL segment; otherwise a usage error."""
    if not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"business name {name!r}: use {NAME_RULE}")
    return name


@dataclass(frozen=True, slots=True)
class Installation:
    folder: Path
    # As for a home: a folder and file of another user (not root) only when told so.
    allow_foreign: bool = False

    @property
    def file(self) -> Path:
        return self.folder / INSTALLATION_FILE

    @property
    def businesses_folder(self) -> Path:
        return self.folder / BUSINESSES_FOLDER

    def new_home(self, name: str) -> Path:
        return self.businesses_folder / check_name(name)

    def businesses(self) -> list[BusinessHome]:
        """The recorded businesses in name order; none when there is no installation file."""
        try:
            text = read_installation_file(self.file, allow_foreign=self.allow_foreign)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise ConfigError(f"cannot read {self.file} ({error.strerror})") from None
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"{self.file} is not valid TOML ({error}); fix or remove it"
            ) from None
        table = document.get("businesses", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{self.file}: [businesses] must be a table of names")
        found: list[BusinessHome] = []
        for name, entry in sorted(table.items()):
            check_name(name)
            home = entry.get("home") if isinstance(entry, dict) else None
            if not isinstance(home, str) or not home:
                raise ConfigError(f'{self.file}: business {name} needs home = "PATH"')
            path = Path(home)
            adopted = path.is_absolute()
            found.append(BusinessHome(name, self._home_inside(name, path), adopted))
        return found

    def _home_inside(self, name: str, path: Path) -> Path:
        """The home of `name`: an absolute path as given, a relative one inside the folder.

        `..` is refused in either, and a relative path must stay inside the folder
        once links are resolved: the file must not send root into someone's home.
        """
        if ".." in path.parts:
            raise ConfigError(
                f"{self.file}: business {name}'s home {str(path)!r} contains `..`; "
                "give the home's absolute path"
            )
        if path.is_absolute():
            return path
        home = self.folder / path
        inside = os.path.realpath(self.folder)
        if os.path.commonpath([inside, os.path.realpath(home)]) != inside:
            raise ConfigError(
                f"{self.file}: business {name}'s home {str(path)!r} leads out of "
                f"{self.folder}; give the home's absolute path"
            )
        return home

    def business(self, name: str) -> BusinessHome:
        for business in self.businesses():
            if business.name == name:
                return business
        raise ConfigError(
            f"no business {name!r} in {self.folder}; `fbstampli business list` shows them, "
            f"`fbstampli business add {name}` creates it"
        )

    def record(self, business: BusinessHome) -> None:
        """Add one business to the installation file, written whole and renamed over."""
        known = self.businesses()
        if any(b.name == business.name for b in known):
            raise ConfigError(f"business {business.name!r} exists already in {self.folder}")
        if any(b.home == business.home for b in known):
            raise ConfigError(f"{business.home} is already a business of {self.folder}")
        self._write([*known, business])

    def forget(self, name: str) -> BusinessHome:
        """Drop one business from the file; its home and files are left as they are."""
        known = self.businesses()
        gone = self.business(name)
        self._write([b for b in known if b.name != name])
        return gone

    def _write(self, businesses: list[BusinessHome]) -> None:
        lines = [
            "# fbstampli installation: the businesses this folder serves (no secrets here).",
            "# Each home is a normal fbstampli home; relative paths are inside this folder.",
            "# Managed by `fbstampli business add|remove`; edit by hand only with care.",
            "",
        ]
        for business in sorted(businesses, key=lambda b: b.name):
            home = (
                str(business.home)
                if business.adopted
                else str(business.home.relative_to(self.folder))
            )
            # A JSON string is a valid TOML basic string: quotes and backslashes escaped.
            lines += [f"[businesses.{business.name}]", f"home = {json.dumps(home)}", ""]
        self.folder.mkdir(parents=True, exist_ok=True)
        check_installation_folder(self.folder, allow_foreign=self.allow_foreign)
        # Through a random exclusive temporary beside it, never a name a link could be planted as.
        write_atomic(self.file, "\n".join(lines).encode("utf-8"))


def business_options(options: Options, business: BusinessHome) -> Options:
    """The options of one command run in `business`'s home, inside `options`' installation.

    The home gets the check the global home gets (`paths.check_home`): one that
    belongs to another user, is writable by others or holds a planted link is
    refused (`--allow-foreign-home` allows only the first), whichever path found it.
    """
    check_home(Paths(business.home), allow_foreign=options.allow_foreign_home)
    return replace(
        options, home=business.home, config=None, installation=options.installation_folder()
    )


def of(options: Options) -> Installation:
    """The installation `options` name, checked as `--allow-foreign-home` says."""
    return Installation(options.installation_folder(), allow_foreign=options.allow_foreign_home)


def selected(options: Options, name: str) -> Options:
    """`--business NAME`: the same command, run in that business's home."""
    if options.config is not None:
        raise ConfigError("give --business or --config, not both: each business has its own")
    return business_options(options, of(options).business(check_name(name)))


# ---- the installation is its owner's (or root's), or we do not use it --------------------------


def _refuse_installation_entry(path: Path, status: os.stat_result, allow_foreign: bool) -> None:
    if stat.S_ISLNK(status.st_mode):
        raise ConfigError(
            f"{path} is a symbolic link; give the real path as --installation "
            "(or FBSTAMPLI_INSTALLATION), or replace the link by the file"
        )
    me = os.geteuid()
    if status.st_uid not in (me, 0) and not allow_foreign:
        raise ConfigError(
            f"{path} belongs to {owner_name(status.st_uid)!r}, not to you or root: it lists the "
            "homes fbstampli runs; run fbstampli as that user, or add --allow-foreign-home "
            "if you mean to"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{path} can be changed by other users (mode {stat.S_IMODE(status.st_mode):04o}); "
            f"run `chmod go-w {path}`"
        )


def check_installation_folder(folder: Path, *, allow_foreign: bool) -> None:
    """Refuse an installation folder that is a link, another user's, or writable by others."""
    try:
        status = os.lstat(folder)
    except FileNotFoundError:
        return
    except OSError as error:
        raise ConfigError(f"cannot use {folder} as the installation ({error.strerror})") from None
    _refuse_installation_entry(folder, status, allow_foreign)


def read_installation_file(file: Path, *, allow_foreign: bool) -> str:
    """`installation.toml`'s text, after its folder and the file itself pass the checks.

    Opened without following a link (`O_NOFOLLOW`), and checked on the open
    descriptor, so a file swapped after the check is not read instead.
    """
    check_installation_folder(file.parent, allow_foreign=allow_foreign)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            _refuse_installation_entry(file, os.lstat(file), allow_foreign)
        raise
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise ConfigError(f"{file} is not a plain file; replace it by one")
        _refuse_installation_entry(file, status, allow_foreign)
        return handle.read(1 << 20).decode("utf-8", errors="replace")
