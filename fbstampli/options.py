"""What the global command-line options said, before anything is opened.

Kept apart from `runtime` so that building the command line (and `--help`)
imports nothing but paths: settings, the store and the edges load later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fbstampli.errors import ConfigError
from fbstampli.paths import Paths, default_home


@dataclass(frozen=True, slots=True)
class Options:
    """What the global command-line options said, before anything is opened."""

    home: Path | None = None
    config: Path | None = None
    verbose: int = 0
    quiet: bool = False
    log_format: str = "text"
    allow_foreign_home: bool = False  # root may run another user's home only when told so
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # The folder listing several businesses (`--installation`); None: the home folder itself.
    installation: Path | None = None

    def paths(self) -> Paths:
        return Paths(self.home or default_home(self.env))

    def installation_folder(self) -> Path:
        """Where `installation.toml` and `businesses/` live: `--installation` (or
        FBSTAMPLI_INSTALLATION), else the home folder, so that an existing single home
        becomes an installation by adding businesses to it, with nothing to move."""
        return self.installation or self.paths().home

    def config_path(self) -> Path | None:
        if self.config is not None:
            try:
                found = self.config.exists()
            except OSError as error:  # a name too long, a folder we may not enter
                raise ConfigError(
                    f"config file {self.config} cannot be read ({error.strerror})"
                ) from None
            if not found:
                raise ConfigError(f"config file {self.config} does not exist")
            if self.config.is_symlink():  # named by the user: follow it here, once, on purpose
                return Path(os.path.realpath(self.config))
            return self.config
        candidate = self.paths().config
        return candidate if candidate.exists() else None
