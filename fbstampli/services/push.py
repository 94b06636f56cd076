"""push-bills, retry and sync: the commands that send FreshBooks data to Stampli."""

from __future__ import annotations

from typing import Any

from fbstampli.report import RunReport
from fbstampli.runtime import Options
from fbstampli.services.setup import not_built


def push_bills(options: Options, *, dry_run: bool, full: bool, since: str | None) -> RunReport:
    return not_built("push-bills")  # type: ignore[no-any-return]


def retry(options: Options, **_: Any) -> RunReport:
    return not_built("retry")  # type: ignore[no-any-return]


def sync(options: Options) -> RunReport:
    return not_built("sync")  # type: ignore[no-any-return]
