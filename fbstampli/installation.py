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

import json
import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from fbstampli.errors import ConfigError
from fbstampli.options import Options

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
            text = self.file.read_text(encoding="utf-8")
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
            found.append(BusinessHome(name, path if adopted else self.folder / path, adopted))
        return found

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
        temporary = self.file.with_name(f".{INSTALLATION_FILE}.writing")
        with temporary.open("w", encoding="utf-8") as writer:
            writer.write("\n".join(lines))
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, self.file)


def business_options(options: Options, business: BusinessHome) -> Options:
    """The options of one command run in `business`'s home, inside `options`' installation."""
    return replace(
        options, home=business.home, config=None, installation=options.installation_folder()
    )


def selected(options: Options, name: str) -> Options:
    """`--business NAME`: the same command, run in that business's home."""
    if options.config is not None:
        raise ConfigError("give --business or --config, not both: each business has its own")
    installation = Installation(options.installation_folder())
    return business_options(options, installation.business(check_name(name)))
