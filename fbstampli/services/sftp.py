"""The Stampli side: the SFTP login and template checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fbstampli.report import RunReport
from fbstampli.runtime import Options
from fbstampli.services.setup import not_built


def auth_sftp(options: Options, **_: Any) -> RunReport:
    return not_built("auth sftp")  # type: ignore[no-any-return]


def template_check(file: Path) -> RunReport:
    return not_built("template check")  # type: ignore[no-any-return]
