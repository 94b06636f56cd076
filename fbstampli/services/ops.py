"""Operating commands: status, doctor, audit, state restore."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.services.setup import not_built


def status(options: Options) -> dict[str, Any]:
    return not_built("status")  # type: ignore[no-any-return]


def doctor(options: Options) -> list[Any]:
    return not_built("doctor")  # type: ignore[no-any-return]


def audit_trail(options: Options, *, bill: int | None, since: str | None) -> list[dict[str, Any]]:
    return not_built("audit")  # type: ignore[no-any-return]


def state_restore(options: Options, source: Path, *, force: bool) -> RunReport:
    return not_built("state restore")  # type: ignore[no-any-return]
