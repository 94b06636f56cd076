"""pull-stampli and reconcile: Stampli's exports back into the audit trail."""

from __future__ import annotations

from collections.abc import Callable

from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime
from fbstampli.services.setup import not_built


def pull_stampli(options: Options, *, now: bool) -> RunReport:
    return not_built("pull-stampli")  # type: ignore[no-any-return]


def reconcile(options: Options) -> RunReport:
    return not_built("reconcile")  # type: ignore[no-any-return]


def sync_steps() -> list[Callable[[Runtime], RunReport]]:
    """The steps `sync` runs after push-bills; empty until pull and reconcile are built."""
    return []
