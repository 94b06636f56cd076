"""Bookkeeping of command runs, for `status` and the audit trail."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fbstampli.clock import from_utc_text
from fbstampli.errors import BudgetExceeded, ExitCode, FbstampliError
from fbstampli.report import RunReport
from fbstampli.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RecordedRun:
    """A run in progress: its row id, and the report its row is finished with."""

    id: int
    report: RunReport


@contextmanager
def recorded_run(store: Store, command: str, report: RunReport) -> Iterator[RecordedRun]:
    """A `runs` row for the block: started before it, finished with the block's outcome.

    The block may replace `run.report` (an engine that returns its own report);
    whatever it holds at the end is what the row records. A block that raises
    is recorded with the exit code its error ends the process with.
    """
    run = RecordedRun(start_run(store, command), report)
    try:
        yield run
    except BaseException as error:
        finish_failed_run(store, run.id, run.report, error)
        raise
    finish_run(store, run.id, run.report)


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
    if isinstance(error, FbstampliError | BudgetExceeded):
        code = int(error.exit_code)
    elif isinstance(error, KeyboardInterrupt):
        code = 130
    else:
        code = int(ExitCode.INTERNAL)
    try:
        finish_run(store, run_id, report, exit_code=code)
    except FbstampliError:
        log.debug("could not record the end of run %d", run_id, exc_info=True)


def latest_runs(store: Store) -> dict[str, dict[str, Any]]:
    """The newest run of each command: when it started, how long it took, how it ended."""
    rows = store.query(
        "SELECT command, started_at, finished_at, exit_code FROM runs WHERE id IN "
        "(SELECT max(id) FROM runs GROUP BY command) ORDER BY command"
    )
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        seconds = None
        if row["finished_at"]:
            elapsed = from_utc_text(row["finished_at"]) - from_utc_text(row["started_at"])
            seconds = round(elapsed.total_seconds(), 1)
        runs[row["command"]] = {
            "started_at": row["started_at"],
            "seconds": seconds,
            "exit_code": row["exit_code"],  # None: still running, or killed
        }
    return runs


def last_run_started_at(store: Store) -> str | None:
    row = store.query_one("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1")
    return None if row is None else str(row["started_at"])


def last_success_started_at(store: Store, command: str) -> str | None:
    """When the newest run of `command` that ended well started (its reads are that fresh)."""
    row = store.query_one(
        "SELECT started_at FROM runs WHERE command = ? AND exit_code = 0 ORDER BY id DESC LIMIT 1",
        (command,),
    )
    return None if row is None else str(row["started_at"])


_FAILING_SINCE = (  # per command, the first run of the failing streak since its last success
    "SELECT command, min(started_at) AS since FROM runs AS r WHERE exit_code != 0 AND id > "
    "coalesce((SELECT max(id) FROM runs AS s WHERE s.command = r.command AND s.exit_code = 0), 0) "
    "GROUP BY command"
)


def failing_since(store: Store) -> dict[str, str]:
    """For each command whose newest runs did not end well, when the first of them started."""
    return {str(row["command"]): str(row["since"]) for row in store.query(_FAILING_SINCE)}
