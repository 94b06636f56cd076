"""Bookkeeping of command runs, for `status` and the audit trail."""

from __future__ import annotations

import json
import logging

from fbstampli.errors import ExitCode, FbstampliError
from fbstampli.report import RunReport
from fbstampli.store import Store

log = logging.getLogger(__name__)


def start_run(store: Store, command: str) -> int:
    with store.transaction():
        return store.execute(
            "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, store.now_text())
        )


def finish_run(store: Store, run_id: int, report: RunReport, exit_code: int | None = None) -> None:
    code = int(report.exit_code) if exit_code is None else exit_code
    with store.transaction():
        store.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
            (store.now_text(), code, json.dumps(report.counts, sort_keys=True), run_id),
        )


def finish_failed_run(store: Store, run_id: int, report: RunReport, error: BaseException) -> None:
    """Record a run that raised with the exit code its error ends the process with.

    Without this, `status` showed a run that ended 3 or 75 as exit 0. A store
    too broken to take the record is left alone: the error itself says why.
    """
    if isinstance(error, FbstampliError):
        code = int(error.exit_code)
    elif isinstance(error, KeyboardInterrupt):
        code = 130
    else:
        code = int(ExitCode.INTERNAL)
    try:
        finish_run(store, run_id, report, exit_code=code)
    except FbstampliError:
        log.debug("could not record the end of run %d", run_id, exc_info=True)
