"""pull-stampli and reconcile: Stampli's exports back into the audit trail."""

from __future__ import annotations

from fbstampli.report import RunReport
from fbstampli.runtime import Options
from fbstampli.services.setup import not_built


def pull_stampli(options: Options, *, now: bool) -> RunReport:
    return not_built("pull-stampli")  # type: ignore[no-any-return]


def reconcile(options: Options) -> RunReport:
    return not_built("reconcile")  # type: ignore[no-any-return]
